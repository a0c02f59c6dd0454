"""Environment add-ins: the catalog, each add-in's parameters, and the install states.

The catalog is data: a new add-in is a new entry, not new code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from gateway.kernel.errors import BadUserInput
from gateway.kernel.tenant import EnvironmentType

SUPPORTED = frozenset({EnvironmentType.SANDBOX, EnvironmentType.PRODUCTION})


class ParameterType(StrEnum):
    STRING = "STRING"
    UUID = "UUID"
    URL = "URL"
    INT = "INT"
    BOOLEAN = "BOOLEAN"
    CHOICE = "CHOICE"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    label: str
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] = ()
    fixed: str | None = None  # the only value accepted (a first-party application id)
    max_length: int = 200


@dataclass(frozen=True)
class AddIn:
    name: str
    title: str
    description: str
    parameters: tuple[Parameter, ...] = ()
    environment_types: frozenset[EnvironmentType] = field(default_factory=lambda: SUPPORTED)
    needs_dual_write: bool = False


class InstallState(StrEnum):
    NOT_INSTALLED = "NOT_INSTALLED"
    INSTALLING = "INSTALLING"
    INSTALLED = "INSTALLED"
    FAILED = "FAILED"
    UNINSTALLING = "UNINSTALLING"


class InstallAction(StrEnum):
    INSTALL = "INSTALL"
    RETRY = "RETRY"
    UNINSTALL = "UNINSTALL"


def install_actions(state: InstallState) -> list[InstallAction]:
    if state is InstallState.NOT_INSTALLED:
        return [InstallAction.INSTALL]
    if state is InstallState.FAILED:
        return [InstallAction.RETRY, InstallAction.UNINSTALL]
    if state is InstallState.INSTALLED:
        return [InstallAction.UNINSTALL]
    return []


def _entra_app(fixed: str | None = None) -> Parameter:
    return Parameter(
        "entraApplicationId", ParameterType.UUID, "Microsoft Entra application ID", fixed=fixed
    )


_TENANT = Parameter("entraTenantId", ParameterType.UUID, "Microsoft Entra tenant ID")

DUAL_WRITE_APPLICATION = AddIn(
    "DualWriteApplication",
    "Dual-write application",
    "The dual-write maps between F&O entities and Dataverse tables (run them as dual-write).",
)

ADD_INS: tuple[AddIn, ...] = (
    AddIn(
        "PlanningOptimization",
        "Planning Optimization",
        "Runs master planning outside the F&O database.",
        (
            Parameter(
                "region",
                ParameterType.CHOICE,
                "Service region",
                choices=("UnitedStates", "Europe", "Asia", "Australia"),
                default="UnitedStates",
                required=False,
            ),
        ),
    ),
    AddIn(
        "InventoryVisibility",
        "Inventory Visibility",
        "Real-time on-hand inventory across channels, as a microservice.",
        (_entra_app(), _TENANT),
    ),
    AddIn(
        "ExportToDataLake",
        "Export to Azure Data Lake",
        "Keeps F&O tables and entities in an Azure Data Lake storage account.",
        (
            Parameter("storageAccount", ParameterType.URL, "Storage account URL"),
            Parameter("keyVault", ParameterType.URL, "Key vault URL"),
            _entra_app(),
            _TENANT,
        ),
    ),
    AddIn(
        "FinanceInsights",
        "Finance insights",
        "Predicts customer payments and cash flow from F&O and Dataverse data.",
        needs_dual_write=True,
    ),
    AddIn(
        "ElectronicInvoicing",
        "Electronic Invoicing",
        "Submits invoices to tax authorities' electronic invoicing services.",
        (_entra_app(fixed="091c98b0-a1c9-4b02-b62c-7753395ccabe"), _TENANT),
    ),
    AddIn(
        "IoTIntelligence",
        "IoT Intelligence",
        "Brings device signals (machine status, product quality) into F&O.",
        (Parameter("iotHub", ParameterType.URL, "IoT hub URL"),),
    ),
    AddIn(
        "ExpenseManagement",
        "Expense Management Service",
        "Receipt capture and expense processing (switch the feature on in F&O afterwards).",
    ),
)
CATALOG: Mapping[str, AddIn] = {a.name: a for a in ADD_INS}


def find_add_in(name: str) -> AddIn:
    if name == DUAL_WRITE_APPLICATION.name:
        return DUAL_WRITE_APPLICATION
    add_in = CATALOG.get(name)
    if add_in is None:
        raise BadUserInput(f"no add-in named {name!r}; known: {', '.join(CATALOG)}")
    return add_in


def validate_parameters(add_in: AddIn, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters as stored, defaults filled in; every problem reported at once."""
    given = dict(given or {})
    problems: list[str] = []
    known = {p.name for p in add_in.parameters}
    problems += [f"{add_in.name} has no parameter {n!r}" for n in sorted(set(given) - known)]
    values: dict[str, Any] = {}
    for parameter in add_in.parameters:
        value = given.get(parameter.name, parameter.default)
        if value is None:
            if parameter.required:
                problems.append(f"{parameter.name} ({parameter.label}) is required")
            continue
        problem = _problem(parameter, value)
        if problem:
            problems.append(f"{parameter.name} ({parameter.label}) {problem}")
        else:
            values[parameter.name] = value
    if problems:
        raise BadUserInput("; ".join(problems), problems=problems)
    return values


def _problem(parameter: Parameter, value: Any) -> str | None:
    kind = parameter.type
    if kind is ParameterType.INT:
        return None if type(value) is int else "must be an integer"
    if kind is ParameterType.BOOLEAN:
        return None if type(value) is bool else "must be true or false"
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > parameter.max_length:
        return f"is longer than {parameter.max_length} characters"
    if kind is ParameterType.UUID:
        try:
            uuid.UUID(value)
        except ValueError:
            return f"must be a GUID such as 00000000-0000-0000-0000-000000000000, not {value!r}"
        if parameter.fixed and value.lower() != parameter.fixed:
            return f"must be {parameter.fixed} (the service's own application)"
    if kind is ParameterType.URL:
        url = urlparse(value)
        if url.scheme != "https" or not url.netloc:
            return f"must be an https:// URL, not {value!r}"
    if kind is ParameterType.CHOICE and value not in parameter.choices:
        return f"must be one of {', '.join(parameter.choices)}"
    if kind is ParameterType.STRING and not re.fullmatch(r"[^\x00-\x1f]+", value):
        return "must be non-empty text without control characters"
    return None
