"""The embedded demo F&O store: Contoso-style companies, customers, products and orders."""
