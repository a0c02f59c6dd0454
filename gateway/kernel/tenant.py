"""The tenant's directory as the setup checks see it: roles, licences, environments."""

from __future__ import annotations

from enum import StrEnum

GIB = 1024**3


class AdminRole(StrEnum):
    """Directory roles that may create environments when the policy restricts it."""

    GLOBAL_ADMIN = "GLOBAL_ADMIN"
    DYNAMICS_365_ADMIN = "DYNAMICS_365_ADMIN"
    POWER_PLATFORM_ADMIN = "POWER_PLATFORM_ADMIN"


class Licence(StrEnum):
    """Licences a user may hold. Each one grants use of F&O."""

    DYNAMICS_365_UNIFIED_OPERATIONS_PLAN = "DYNAMICS_365_UNIFIED_OPERATIONS_PLAN"
    AX_ENTERPRISE = "AX_ENTERPRISE"
    FINANCE = "FINANCE"
    SUPPLY_CHAIN_MANAGEMENT = "SUPPLY_CHAIN_MANAGEMENT"
    COMMERCE = "COMMERCE"
    PROJECT_OPERATIONS = "PROJECT_OPERATIONS"
    HUMAN_RESOURCES = "HUMAN_RESOURCES"


class EnvironmentCreationPolicy(StrEnum):
    """Who may create production environments (the admin center's governance setting)."""

    EVERYONE = "EVERYONE"
    ADMINS_ONLY = "ADMINS_ONLY"


class EnvironmentType(StrEnum):
    SANDBOX = "SANDBOX"
    PRODUCTION = "PRODUCTION"
    CLOUD_HOSTED_DEVELOPMENT = "CLOUD_HOSTED_DEVELOPMENT"


class DeploymentState(StrEnum):
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
