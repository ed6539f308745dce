"""The input tables of riskstrat, each declared once.

Codes mirror the national datasets (SUS/HES APC, ECDS, outpatients, CLD); see
`reference/codelists.toml` for each list's source. Person ids are pseudonymised strings.
"""

from __future__ import annotations

from data_contracts.schema import ID_PATTERN, Column, OrderRule, RequiredWhen, Table


def _person_id(description: str = "Pseudonymised person id (e.g. a pseudonymised NHS number).") -> Column:
    return Column("person_id", "string", description, required=True, pattern=ID_PATTERN)


COST_MAXIMUM = 10_000_000.0
"""No single activity row costs ten million in any currency riskstrat reads (the dearest NHS spells cost well
under one million pounds): a larger value is a corrupt file, not a patient, and would dominate every total."""


def _cost(what: str) -> tuple[Column, Column]:
    return (
        Column(
            "cost",
            "float",
            f"Cost of the {what} in GBP; imputed from the unit-cost table when missing.",
            minimum=0,
            maximum=COST_MAXIMUM,
            money=True,
        ),
        Column(
            "cost_imputed", "bool", "True when `cost` was imputed from the reference unit-cost table.", derived=True
        ),
    )


PERSONS = Table(
    name="persons",
    description="One row per person in the linked population.",
    grain=("person_id",),
    person_linked=False,
    columns=(
        _person_id(),
        Column(
            "birth_year",
            "int",
            "Year of birth.",
            required=True,
            minimum=1890,
            maximum=2100,
            year_not_after_extract=True,
        ),
        Column("birth_month", "int", "Month of birth (1-12).", minimum=1, maximum=12),
        Column("sex", "string", "Person stated gender code.", required=True, codelist="sex"),
        Column("ethnicity_group", "string", "Top-level ethnic group.", codelist="ethnicity_group"),
        Column("lsoa", "string", "Lower layer super output area of residence.", pattern=ID_PATTERN),
        Column("imd_decile", "int", "Index of Multiple Deprivation decile (1 = most deprived).", minimum=1, maximum=10),
        Column("gp_practice", "string", "Registered GP practice code.", required=True, pattern=ID_PATTERN),
        Column("date_of_death", "date", "Date of death, empty when alive.", event_date=True),
    ),
)

OPT_OUTS = Table(
    name="opt_outs",
    description="People who opted out of the use of their data; none of them may appear in any output.",
    grain=("person_id", "opt_out_type"),
    person_linked=False,
    columns=(
        _person_id(),
        Column("opt_out_type", "string", "Kind of objection.", required=True, codelist="opt_out_type"),
        Column("recorded_date", "date", "Date the objection was recorded.", required=True),
    ),
)

APC_SPELLS = Table(
    name="apc_spells",
    description="Admitted patient care: one row per hospital spell (SUS+/HES APC).",
    grain=("spell_id",),
    dated_by="admission_date",
    cost_setting=None,  # elective or emergency unit cost by admission method; see data_contracts.costs
    columns=(
        Column("spell_id", "string", "Spell identifier.", required=True),
        _person_id(),
        Column("admission_date", "date", "Date of admission.", required=True, event_date=True),
        Column(
            "discharge_date", "date", "Date of discharge; empty while the person is still in hospital.", event_date=True
        ),
        Column(
            "admission_method",
            "string",
            "Admission method (emergency 21-28, 2A-2D; elective 11-13).",
            required=True,
            codelist="admission_method",
        ),
        Column("discharge_method", "string", "Discharge method (4 = died).", codelist="discharge_method"),
        Column(
            "discharge_destination",
            "string",
            "Discharge destination (19 usual residence, 54/65/85 care home, 79 died).",
            codelist="apc_discharge_destination",
        ),
        Column(
            "primary_diagnosis",
            "string",
            "Primary diagnosis, ICD-10, 3 or 4 characters without the dot.",
            pattern=r"^[A-Z][0-9]{2}[0-9A-Z]?$",
        ),
        Column(
            "secondary_diagnoses",
            "string",
            "Secondary diagnoses, ICD-10 codes separated by ';'.",
            pattern=r"^([A-Z][0-9]{2}[0-9A-Z]?)(;[A-Z][0-9]{2}[0-9A-Z]?)*$",
        ),
        Column("treatment_function_code", "string", "Treatment function (specialty) code.", pattern=r"^[0-9]{3}$"),
        Column(
            "discharge_ready_date",
            "date",
            "Date the person was ready for discharge; days after it are delayed-discharge days.",
            event_date=True,
        ),
        *_cost("spell"),
    ),
    order_rules=(
        OrderRule("admission_date", "discharge_date", "discharge_before_admission"),
        OrderRule("admission_date", "discharge_ready_date", "discharge_ready_before_admission"),
    ),
)

AE_ATTENDANCES = Table(
    name="ae_attendances",
    description="Emergency care: one row per A&E attendance (ECDS).",
    grain=("attendance_id",),
    dated_by="arrival_date",
    cost_setting="ae_attendance",
    columns=(
        Column("attendance_id", "string", "Attendance identifier.", required=True),
        _person_id(),
        Column("arrival_date", "date", "Date of arrival.", required=True, event_date=True),
        Column(
            "department_type",
            "string",
            "Emergency care department type (01-04).",
            required=True,
            codelist="ae_department_type",
        ),
        Column(
            "discharge_destination_group",
            "string",
            "Where the person went after the attendance.",
            codelist="ae_discharge_destination_group",
        ),
        *_cost("attendance"),
    ),
)

OP_APPOINTMENTS = Table(
    name="op_appointments",
    description="Outpatients: one row per appointment, attended or not.",
    grain=("appointment_id",),
    dated_by="appointment_date",
    cost_setting="outpatient_attendance",
    notes="Imputed costs apply to attended appointments only; non-attended ones cost 0.",
    columns=(
        Column("appointment_id", "string", "Appointment identifier.", required=True),
        _person_id(),
        Column("appointment_date", "date", "Date of the appointment.", required=True, event_date=True),
        Column(
            "attendance_status",
            "string",
            "Attended or did not attend (3 and 7 = DNA).",
            required=True,
            codelist="op_attendance_status",
        ),
        Column("first_attendance", "bool", "True for a first appointment, false for a follow-up."),
        Column("treatment_function_code", "string", "Treatment function (specialty) code.", pattern=r"^[0-9]{3}$"),
        *_cost("appointment"),
    ),
)

GP_EVENTS = Table(
    name="gp_events",
    description="Primary care: one row per GP practice contact, from a local extract.",
    grain=("event_id",),
    dated_by="event_date",
    cost_setting=None,  # GP or nurse consultation by staff role; see data_contracts.costs
    columns=(
        Column("event_id", "string", "Event identifier.", required=True),
        _person_id(),
        Column("event_date", "date", "Date of the contact.", required=True, event_date=True),
        Column("event_type", "string", "Kind of contact.", required=True, codelist="gp_event_type"),
        Column("staff_role", "string", "Role of the staff member.", codelist="gp_staff_role"),
        *_cost("contact"),
    ),
)

COMMUNITY_CONTACTS = Table(
    name="community_contacts",
    description="Community health services: one row per contact (CSDS-style).",
    grain=("contact_id",),
    dated_by="contact_date",
    cost_setting=None,  # by service; see data_contracts.costs
    columns=(
        Column("contact_id", "string", "Contact identifier.", required=True),
        _person_id(),
        Column("contact_date", "date", "Date of the contact.", required=True, event_date=True),
        Column("service", "string", "Community service.", required=True, codelist="community_service"),
        Column("attended", "bool", "True when the person was seen."),
        *_cost("contact"),
    ),
)

PRESCRIPTIONS = Table(
    name="prescriptions",
    description="Primary care prescriptions: one row per issue.",
    grain=("prescription_id",),
    dated_by="issue_date",
    columns=(
        Column("prescription_id", "string", "Prescription identifier.", required=True),
        _person_id(),
        Column("issue_date", "date", "Date of issue.", required=True, event_date=True),
        Column(
            "bnf_code",
            "string",
            "BNF code; its first 4 characters are the BNF section.",
            required=True,
            pattern=r"^[0-9]{4}[0-9A-Z]*$",
        ),
        Column("items", "int", "Number of items.", required=True, minimum=1),
        *_cost("issue"),
    ),
    notes="Prescriptions carry no imputation rule: a missing cost stays empty and counts as 0 in cost totals.",
)

CONDITIONS = Table(
    name="conditions",
    description="Long-term conditions from GP registers: one row per person and condition.",
    grain=("person_id", "condition"),
    dated_by="recorded_date",
    columns=(
        _person_id(),
        Column(
            "condition",
            "string",
            "Long-term condition (QOF register group).",
            required=True,
            codelist="long_term_condition",
        ),
        Column("recorded_date", "date", "Date first recorded.", required=True, event_date=True),
    ),
)

ASC_EVENTS = Table(
    name="asc_events",
    description="Adult social care client level data (CLD): one row per request, assessment, service or review.",
    grain=("event_id",),
    dated_by="event_start_date",
    columns=(
        Column("event_id", "string", "Event identifier.", required=True),
        _person_id(),
        Column("la_code", "string", "Local authority code.", required=True, pattern=ID_PATTERN),
        Column(
            "event_type", "string", "Request, Assessment, Service or Review.", required=True, codelist="asc_event_type"
        ),
        Column("event_start_date", "date", "Start of the event.", required=True, event_date=True),
        Column("event_end_date", "date", "End of the event; empty = ongoing.", event_date=True),
        Column(
            "service_type",
            "string",
            "CLD Release 2 service type (Release 1 values are mapped).",
            codelist="asc_service_type",
        ),
        Column("service_component", "string", "CLD Release 2 service component.", codelist="asc_service_component"),
        Column("primary_support_reason", "string", "Primary support reason.", codelist="asc_primary_support_reason"),
        Column("event_outcome", "string", "Event outcome.", codelist="asc_event_outcome"),
        Column("unit_cost", "float", "Unit cost in GBP.", minimum=0, maximum=COST_MAXIMUM, money=True),
        Column("cost_frequency_unit_type", "string", "What the unit cost is per.", codelist="asc_cost_frequency"),
        Column(
            "planned_units_per_week",
            "float",
            "Planned units per week (hours, days or sessions); a week has 168 hours.",
            minimum=0,
            maximum=168,
        ),
        Column(
            "weekly_cost",
            "float",
            "Weekly cost derived by the CLD rule (one-off costs: the whole cost).",
            derived=True,
            money=True,
        ),
        Column("cost_imputed", "bool", "True when the unit cost was imputed from the reference table.", derived=True),
    ),
    order_rules=(OrderRule("event_start_date", "event_end_date", "end_before_start"),),
)

TEAMS = Table(
    name="teams",
    description="Multidisciplinary teams: which team serves each GP practice, and how many people it can case-manage.",
    grain=("gp_practice",),
    person_linked=False,
    columns=(
        Column("gp_practice", "string", "GP practice code.", required=True, pattern=ID_PATTERN),
        Column("team_id", "string", "Team identifier.", required=True, pattern=ID_PATTERN),
        Column("team_name", "string", "Team name.", required=True),
        Column("capacity", "int", "How many people the team can case-manage at once.", required=True, minimum=1),
    ),
)

CASELOAD = Table(
    name="caseload",
    description=(
        "Multidisciplinary team caseload decisions: one row per person, team and decision date (recorded in the "
        "MDT workspace and exported as a batch, or delivered in a batch by a team that records them elsewhere)."
    ),
    grain=("person_id", "team_id", "decision_date"),
    dated_by="decision_date",
    notes=(
        "A later row with the same person, team and decision date replaces the earlier one (a correction). "
        "The evaluation of the service reads who was taken on and when from here."
    ),
    columns=(
        _person_id(),
        Column("team_id", "string", "Team that made the decision.", required=True, pattern=ID_PATTERN),
        Column("decision", "string", "What the team decided.", required=True, codelist="caseload_decision"),
        Column("discussed_date", "date", "Date the person was discussed at the MDT meeting.", event_date=True),
        Column("decision_date", "date", "Date the decision was made.", required=True, event_date=True),
        Column(
            "reason_code",
            "string",
            "Why the person is not appropriate (or another decision's reason).",
            codelist="caseload_reason",
        ),
        Column("case_management_start", "date", "Start of case management (taken on).", event_date=True),
        Column("case_management_end", "date", "End of case management; empty while it continues.", event_date=True),
    ),
    order_rules=(
        OrderRule("discussed_date", "decision_date", "decision_before_discussion"),
        OrderRule("case_management_start", "case_management_end", "end_before_start"),
    ),
    required_when=(
        RequiredWhen("reason_code", "decision", ("not_appropriate",), "missing_reason"),
        RequiredWhen("case_management_start", "decision", ("taken_on",), "missing_start"),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        PERSONS,
        OPT_OUTS,
        TEAMS,
        CONDITIONS,
        APC_SPELLS,
        AE_ATTENDANCES,
        OP_APPOINTMENTS,
        GP_EVENTS,
        COMMUNITY_CONTACTS,
        PRESCRIPTIONS,
        ASC_EVENTS,
        CASELOAD,
    )
}
"""All contract tables, in load order (persons and opt-outs first: others are checked against them)."""

ACTIVITY_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.person_linked)

COSTED_EVENT_DATES: dict[str, str] = {
    name: t.dated_by for name, t in TABLES.items() if t.dated_by and any(c.name == "cost" for c in t.columns)
}
"""Activity tables whose rows carry a `cost`, each with the date that places the cost in time."""
