"""The one list of features: name (= column name), label, definition and how to say a value in plain words.

`build_features` returns exactly these columns in this order. Feature functions compute them; this module only
describes them, so explanations, data dictionaries and model code read one source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from data_contracts.reference import REFERENCE_CURRENCY, codelist, money_prefix
from features.inputs import WINDOW_MONTHS
from features.recency import RECENCY_DECAY_PER_MONTH, RECENCY_WINDOW_MONTHS

FeatureKind = Literal["numeric", "flag", "categorical"]
FeatureDtype = Literal["int", "float", "bool", "str"]


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    # Plain-words rendering of a value, e.g. "{value:.0f} emergency admissions in the last 12 months".
    template: str
    kind: FeatureKind
    group: str
    dtype: FeatureDtype
    definition: str
    # Value for a person with no record in the source table (None: stays null, e.g. "days since" with no event).
    default: int | float | bool | str | None = 0
    # Rendering when the value is exactly 1 (singular noun).
    template_one: str | None = None
    # Rendering of a false flag.
    template_off: str | None = None
    # Rendering of a null value.
    template_missing: str | None = None
    # Categorical value -> words.
    value_labels: Mapping[str, str] = field(default_factory=dict)
    # Months of history before as_of the value looks at, when its name's `_<m>m` suffix does not say it.
    history_months: int | None = None
    # The reason group the feature belongs to (models/reasons.py): related features make one reason. Default:
    # the name without its window suffix, so one count over several windows is one reason.
    reason: str = ""
    # A days-since value: the template says it as `{ago}` ("11 months ago").
    ago: bool = False
    # An engineered value phrased from the record's own counts (the person's whole feature row), so a reader can
    # check it; the template is the fallback when the row lacks them.
    phrase_from_record: Callable[[Mapping[str, Any]], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.reason:
            object.__setattr__(self, "reason", re.sub(r"_\d+m$", "", self.name))

    @property
    def months_of_history_needed(self) -> int | None:
        """How far back the value looks: the explicit `history_months`, else the `_<m>m` window in the name
        (None: not a windowed value, e.g. age or a long-term condition flag)."""
        if self.history_months is not None:
            return self.history_months
        window = re.search(r"_(\d+)m$", self.name)
        return int(window.group(1)) if window else None


def _lower_first(label: str) -> str:
    """'Heart failure' -> 'heart failure', but 'COPD' stays 'COPD'."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def _windowed_counts(
    stem: str, one: str, many: str, group: str, definition: str, dtype: FeatureDtype = "int", reason: str = ""
) -> list[Feature]:
    """One count feature per look-back window: `{stem}_{m}m`, all in one reason group (`reason`, else the stem)."""
    return [
        Feature(
            name=f"{stem}_{m}m",
            label=f"{many[:1].upper()}{many[1:]}, {m} months",
            template=f"{{value:.0f}} {many} in the last {m} months",
            template_one=f"1 {one} in the last {m} months",
            kind="numeric",
            group=group,
            dtype=dtype,
            definition=f"{definition} in the {m} calendar months before as_of.",
            reason=reason or stem,
        )
        for m in WINDOW_MONTHS
    ]


def _cost(setting: str, words: str, definition: str) -> Feature:
    return Feature(
        name=f"cost_{setting}_12m",
        label=f"{words[:1].upper()}{words[1:]} cost, 12 months",
        template=f"{{money}}{{value:,.0f}} of {words} costs in the last 12 months",
        kind="numeric",
        group="costs",
        dtype="float",
        definition=f"{definition} in the 12 calendar months before as_of, in the batch's currency.",
        reason="costs",
    )


# GP contact types of the gp_event_type code list: (name stem, singular noun, plural noun).
_GP_EVENT_WORDS: dict[str, tuple[str, str, str]] = {
    "face_to_face": ("gp_face_to_face", "face-to-face GP appointment", "face-to-face GP appointments"),
    "telephone": ("gp_telephone", "GP telephone consultation", "GP telephone consultations"),
    "home_visit": ("gp_home_visit", "GP home visit", "GP home visits"),
    "online": ("gp_online", "online GP consultation", "online GP consultations"),
    "did_not_attend": ("gp_dnas", "missed GP appointment", "missed GP appointments"),
}


def gp_event_feature_stems() -> dict[str, str]:
    """gp_event_type code -> feature name stem (codes added to the code list later get a generic stem)."""
    return {code: _GP_EVENT_WORDS.get(code, (f"gp_{code}", "", ""))[0] for code in codelist("gp_event_type").codes}


def ltc_feature_name(condition: str) -> str:
    return f"ltc_{condition}"


def _demographics() -> list[Feature]:
    sexes = {code: _lower_first(label) for code, label in codelist("sex").codes.items()}
    ethnic_groups = dict(codelist("ethnicity_group").codes)
    return [
        Feature(
            "age",
            "Age",
            "aged {value:.0f}",
            "numeric",
            "demographics",
            "int",
            "Age in whole years at as_of, taking the birthday as the 1st of the birth month (1 July when the month "
            "is unknown).",
            default=None,
            template_missing="age not known",
        ),
        Feature(
            "sex",
            "Sex",
            "sex: {value}",
            "categorical",
            "demographics",
            "str",
            "Person stated gender code (1 male, 2 female, 9 indeterminate, X not known).",
            default=None,
            template_missing="sex not recorded",
            value_labels=sexes,
        ),
        Feature(
            "imd_decile",
            "Deprivation decile",
            "deprivation decile {value:.0f} (1 = most deprived)",
            "numeric",
            "demographics",
            "int",
            "Index of Multiple Deprivation decile of the area of residence (1 = most deprived).",
            default=None,
            template_missing="deprivation decile not known",
        ),
        Feature(
            "ethnicity_group",
            "Ethnic group",
            "ethnic group: {value}",
            "categorical",
            "demographics",
            "str",
            "Top-level ethnic group.",
            default=None,
            template_missing="ethnic group not recorded",
            value_labels=ethnic_groups,
        ),
    ]


def _conditions() -> list[Feature]:
    features = []
    for condition, label in codelist("long_term_condition").codes.items():
        words = _lower_first(label)
        features.append(
            Feature(
                ltc_feature_name(condition),
                label,
                f"has {words}",
                "flag",
                "conditions",
                "bool",
                f"{label} recorded on a GP register before as_of.",
                default=False,
                template_off=f"no {words}",
                reason="long_term_conditions",
            )
        )
    features += [
        Feature(
            "ltc_count",
            "Long-term conditions",
            "{value:.0f} long-term conditions",
            "numeric",
            "conditions",
            "int",
            "Number of distinct long-term conditions (QOF register groups) recorded before as_of.",
            template_one="1 long-term condition",
            reason="long_term_conditions",
        ),
        Feature(
            "years_since_first_ltc",
            "Years since first long-term condition",
            "first long-term condition recorded {value:.1f} years ago",
            "numeric",
            "conditions",
            "float",
            "Years (of 365.25 days) from the earliest recorded long-term condition to as_of; null when none.",
            default=None,
            template_missing="no long-term condition recorded",
            reason="long_term_conditions",
        ),
        Feature(
            "charlson_index",
            "Charlson comorbidity index",
            "Charlson comorbidity index {value:.0f}",
            "numeric",
            "conditions",
            "int",
            "Charlson comorbidity index (Quan 2005 ICD-10 coding, Charlson 1987 weights, only the more severe of "
            "paired categories) from the diagnoses of hospital spells admitted in the 24 months before as_of and "
            "discharged before as_of.",
        ),
        Feature(
            "hfrs",
            "Hospital Frailty Risk Score",
            "Hospital Frailty Risk Score {value:.1f}",
            "numeric",
            "conditions",
            "float",
            "Hospital Frailty Risk Score (Gilbert et al. 2018: sum of the weights of distinct 3-character ICD-10 "
            "codes) from the diagnoses of hospital spells admitted in the 24 months before as_of and discharged "
            "before as_of; above 5 intermediate, above 15 high frailty risk.",
        ),
    ]
    return features


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _unplanned_trend_words(record: Mapping[str, Any]) -> str | None:
    """The trend as the two counts it compares, which a reader can check against the record."""
    try:
        recent = int(record["emergency_admissions_6m"]) + int(record["ae_attendances_6m"])
        earlier = recent - int(record["unplanned_trend_6m"])
    except (KeyError, TypeError, ValueError):
        return None
    change = "up from" if recent > earlier else "down from" if recent < earlier else "the same as"
    counted = _plural(recent, "emergency admission or A&E attendance", "emergency admissions and A&E attendances")
    return f"{counted} in the last 6 months, {change} {earlier} in the 6 months before"


# The contacts the recency-weighted intensity counts (features/recency.py), as counts per window.
_CONTACT_COUNTS = (
    "emergency_admissions",
    "ae_attendances",
    "op_attendances",
    "gp_face_to_face",
    "gp_telephone",
    "gp_home_visit",
    "gp_online",
    "community_contacts",
)


def _recent_contacts_words(record: Mapping[str, Any]) -> str | None:
    """The weighted intensity is not a number anyone can find in a record; the counts it weighs are."""
    try:
        total = sum(int(record[f"{stem}_24m"] or 0) for stem in _CONTACT_COUNTS)
        recent = sum(int(record[f"{stem}_3m"] or 0) for stem in _CONTACT_COUNTS)
    except (KeyError, TypeError, ValueError):
        return None
    contacts = _plural(total, "contact", "contacts")
    return f"{contacts} with health services in the last 2 years, {recent} in the last 3 months"


def ago_words(days: float) -> str:
    """A days-since value the way a clinician says it."""
    d = round(days)
    if d < 14:
        return "today" if d == 0 else f"{_plural(d, 'day', 'days')} ago"
    if d < 61:
        return f"{round(d / 7)} weeks ago"
    if d < 730:
        return f"{_plural(round(d / 30.44), 'month', 'months')} ago"
    return f"{d / 365.25:.0f} years ago"


def _hospital() -> list[Feature]:
    features = [
        *_windowed_counts(
            "emergency_admissions",
            "emergency admission",
            "emergency admissions",
            "hospital",
            "Hospital spells with an emergency admission method (21-28, 2A-2D) admitted",
        ),
        *_windowed_counts(
            "elective_admissions",
            "elective admission",
            "elective admissions",
            "hospital",
            "Hospital spells with an elective admission method (11-13) admitted",
        ),
        *_windowed_counts(
            "bed_days",
            "day in hospital",
            "days in hospital",
            "hospital",
            "Days in hospital (nights between admission and discharge, a spell still open at as_of counted up to "
            "as_of)",
        ),
        Feature(
            "days_since_last_emergency_admission",
            "Days since last emergency admission",
            "last emergency admission {ago}",
            "numeric",
            "hospital",
            "int",
            "Days from the most recent emergency admission before as_of to as_of; null when there is none in the "
            "data (no cap: tree models treat null as its own branch).",
            default=None,
            template_missing="no emergency admission on record",
            reason="emergency_admissions",
            ago=True,
        ),
        Feature(
            "delayed_discharge_days_12m",
            "Delayed-discharge days, 12 months",
            "{value:.0f} days in hospital after being ready to leave, in the last 12 months",
            "numeric",
            "hospital",
            "int",
            "Days between the discharge-ready date and discharge, for spells discharged in the 12 calendar months "
            "before as_of.",
            template_one="1 day in hospital after being ready to leave, in the last 12 months",
            reason="bed_days",
        ),
        Feature(
            "discharged_to_care_home_12m",
            "Discharged to a care home, 12 months",
            "discharged from hospital to a care home in the last 12 months",
            "flag",
            "hospital",
            "bool",
            "A hospital spell discharged to a care home (destination 54, 65, 85) in the 12 calendar months before "
            "as_of.",
            default=False,
            template_off="not discharged from hospital to a care home in the last 12 months",
        ),
        *_windowed_counts(
            "ae_attendances", "A&E attendance", "A&E attendances", "hospital", "A&E (ECDS) attendances arriving"
        ),
        Feature(
            "days_since_last_ae_attendance",
            "Days since last A&E attendance",
            "last A&E attendance {ago}",
            "numeric",
            "hospital",
            "int",
            "Days from the most recent A&E arrival before as_of to as_of; null when there is none in the data.",
            default=None,
            template_missing="no A&E attendance on record",
            reason="ae_attendances",
            ago=True,
        ),
        Feature(
            "unplanned_trend_6m",
            "Trend in unplanned care",
            "{value:+.0f} emergency admissions and A&E attendances in the last 6 months compared with the 6 "
            "months before",
            "numeric",
            "hospital",
            "int",
            "Emergency admissions plus A&E attendances in the 6 months before as_of minus those in the 6 months "
            "before that.",
            history_months=12,
            phrase_from_record=_unplanned_trend_words,
        ),
        *_windowed_counts(
            "op_attendances",
            "outpatient attendance",
            "outpatient attendances",
            "hospital",
            "Outpatient appointments attended (status 5 or 6)",
        ),
        *_windowed_counts(
            "op_dnas",
            "missed outpatient appointment",
            "missed outpatient appointments",
            "hospital",
            "Outpatient appointments not attended (status 3 or 7)",
            reason="missed_appointments",
        ),
    ]
    return features


def _primary_and_community() -> list[Feature]:
    features = []
    for code, label in codelist("gp_event_type").codes.items():
        stem, one, many = _GP_EVENT_WORDS.get(code, (f"gp_{code}", f"GP contact ({label})", f"GP contacts ({label})"))
        reason = "missed_appointments" if codelist("gp_event_type").group.get(code) == "dna" else "gp_contacts"
        features += _windowed_counts(
            stem, one, many, "primary_care", f"GP practice contacts of type {label!r} dated", reason=reason
        )
    features += _windowed_counts(
        "community_contacts",
        "community health contact",
        "community health contacts",
        "community",
        "Community health service contacts where the person was seen (attended true or not recorded)",
    )
    return features


def _recent_contacts() -> list[Feature]:
    return [
        Feature(
            "contacts_recency_weighted_24m",
            "Recent contact intensity",
            "{value:.1f} health service contacts in the last 2 years, counting recent months most",
            "numeric",
            "activity",
            "float",
            "Emergency admissions, A&E attendances, attended outpatient appointments, GP contacts that took place "
            f"and community contacts in the {RECENCY_WINDOW_MONTHS} months before as_of, each weighted "
            f"{RECENCY_DECAY_PER_MONTH} to the power of the whole months before as_of (last month 1, a year ago "
            f"{RECENCY_DECAY_PER_MONTH**12:.2f}), summed (features/recency.py).",
            phrase_from_record=_recent_contacts_words,
        )
    ]


def _prescribing() -> list[Feature]:
    return [
        Feature(
            "bnf_sections_3m",
            "BNF sections, 3 months",
            "medicines from {value:.0f} BNF sections in the last 3 months",
            "numeric",
            "prescribing",
            "int",
            "Distinct BNF sections (first 4 characters of the BNF code) issued in the 3 calendar months before as_of: "
            "a polypharmacy measure.",
            template_one="medicines from 1 BNF section in the last 3 months",
            reason="medicines",
        ),
        Feature(
            "prescription_items_3m",
            "Prescription items, 3 months",
            "{value:.0f} prescription items in the last 3 months",
            "numeric",
            "prescribing",
            "int",
            "Prescription items issued in the 3 calendar months before as_of.",
            template_one="1 prescription item in the last 3 months",
            reason="medicines",
        ),
        Feature(
            "prescription_items_12m",
            "Prescription items, 12 months",
            "{value:.0f} prescription items in the last 12 months",
            "numeric",
            "prescribing",
            "int",
            "Prescription items issued in the 12 calendar months before as_of.",
            template_one="1 prescription item in the last 12 months",
            reason="medicines",
        ),
    ]


# asc_service_type groups, most intensive first: a person with several current services is described by the first.
ASC_SERVICE_PRIORITY: tuple[str, ...] = (
    "nursing",
    "residential",
    "prison",
    "community",
    "reablement",
    "short_term",
    "carer",
    "unknown",
)

_ASC_SERVICE_WORDS: dict[str, str] = {
    "none": "no social care service",
    "nursing": "long-term nursing care",
    "residential": "long-term residential care",
    "prison": "long-term support in prison",
    "community": "long-term support in the community",
    "reablement": "reablement (short-term support to maximise independence)",
    "short_term": "other short-term support",
    "carer": "support for an unpaid carer",
    "unknown": "a service of unrecorded type",
}


def _social_care() -> list[Feature]:
    return [
        Feature(
            "asc_current_service",
            "Social care service now",
            "social care now: {value}",
            "categorical",
            "social_care",
            "str",
            "Group of the adult social care service (CLD service type) the person receives at as_of: the most "
            f"intensive of {', '.join(ASC_SERVICE_PRIORITY)}; 'none' without a current service. A service started "
            "before as_of counts as current unless it ended before as_of.",
            default="none",
            value_labels=_ASC_SERVICE_WORDS,
            reason="social_care_now",
        ),
        Feature(
            "asc_weekly_cost_now",
            "Social care weekly cost now",
            "social care costing {money}{value:,.0f} a week now",
            "numeric",
            "social_care",
            "float",
            "Sum of the weekly costs (CLD rule) of the social care services current at as_of, one-off costs "
            "excluded, in the batch's currency.",
            reason="social_care_now",
        ),
        Feature(
            "asc_planned_hours_per_week_now",
            "Home care hours per week now",
            "{value:g} hours of home care planned a week",
            "numeric",
            "social_care",
            "float",
            "Planned units per week of current social care services costed by the hour (home care hours).",
            template_one="1 hour of home care planned a week",
            reason="social_care_now",
        ),
        Feature(
            "in_residential_or_nursing_care",
            "In a care home now",
            "lives in a care home (long-term residential or nursing care)",
            "flag",
            "social_care",
            "bool",
            "Receives a long-term residential or nursing care service at as_of.",
            default=False,
            template_off="not in long-term residential or nursing care",
            reason="social_care_now",
        ),
        Feature(
            "asc_reablement_12m",
            "Reablement, 12 months",
            "had reablement in the last 12 months",
            "flag",
            "social_care",
            "bool",
            "A reablement service (service type ST-Max or component Reablement) running at some time in the 12 "
            "calendar months before as_of.",
            default=False,
            template_off="no reablement in the last 12 months",
            reason="social_care_contact",
        ),
        Feature(
            "asc_carer_support_12m",
            "Carer support, 12 months",
            "unpaid carer supported in the last 12 months",
            "flag",
            "social_care",
            "bool",
            "An unpaid-carer support service running at some time in the 12 calendar months before as_of.",
            default=False,
            template_off="no unpaid-carer support in the last 12 months",
            reason="social_care_contact",
        ),
        Feature(
            "asc_assessments_12m",
            "Social care assessments, 12 months",
            "{value:.0f} social care assessments in the last 12 months",
            "numeric",
            "social_care",
            "int",
            "Adult social care assessments started in the 12 calendar months before as_of.",
            template_one="1 social care assessment in the last 12 months",
            reason="social_care_contact",
        ),
        Feature(
            "asc_requests_12m",
            "Social care requests, 12 months",
            "{value:.0f} requests for social care support in the last 12 months",
            "numeric",
            "social_care",
            "int",
            "Requests for adult social care support started in the 12 calendar months before as_of.",
            template_one="1 request for social care support in the last 12 months",
            reason="social_care_contact",
        ),
    ]


def _costs() -> list[Feature]:
    return [
        _cost(
            "hospital",
            "hospital inpatient",
            "Cost of hospital spells admitted, and already discharged before as_of (an open spell's cost is not "
            "known yet),",
        ),
        _cost("ae", "A&E", "Cost of A&E attendances arriving"),
        _cost("outpatient", "outpatient", "Cost of outpatient appointments dated"),
        _cost("gp", "GP practice", "Cost of GP practice contacts dated"),
        _cost("community", "community health", "Cost of community health contacts dated"),
        _cost("prescribing", "prescribing", "Cost of prescriptions issued"),
        _cost(
            "social_care",
            "social care",
            "Adult social care cost: weekly cost times the weeks a service ran (a service still running at as_of "
            "counts up to as_of), one-off costs once when they started,",
        ),
        _cost(
            "total",
            "health and social care",
            "Sum of the hospital, A&E, outpatient, GP, community, prescribing and social care costs",
        ),
    ]


CATALOGUE: dict[str, Feature] = {
    f.name: f
    for f in (
        *_demographics(),
        *_conditions(),
        *_hospital(),
        *_primary_and_community(),
        *_recent_contacts(),
        *_prescribing(),
        *_social_care(),
        *_costs(),
    )
}
"""Every feature, in output column order."""


REASON_LABELS: dict[str, str] = {
    "emergency_admissions": "Emergency admissions",
    "ae_attendances": "A&E attendances",
    "elective_admissions": "Planned admissions",
    "bed_days": "Days in hospital",
    "op_attendances": "Outpatient appointments",
    "missed_appointments": "Missed appointments",
    "gp_contacts": "GP contacts",
    "community_contacts": "Community health contacts",
    "contacts_recency_weighted": "Contact with health services",
    "long_term_conditions": "Long-term conditions",
    "medicines": "Medicines",
    "social_care_now": "Social care now",
    "social_care_contact": "Contact with social care",
    "costs": "Cost of care",
}
"""Labels of the reason groups that hold several features; a one-feature group takes the feature's label."""


_FIRST_LABEL = {f.reason: f.label for f in reversed(CATALOGUE.values())}


def reason_label(reason: str) -> str:
    """A reason group's label: its own when declared, else its (first) feature's."""
    return REASON_LABELS.get(reason) or _FIRST_LABEL.get(reason, reason)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # null or NaN


def is_present(name: str, value: object) -> bool:
    """Whether the value states something in the record: a count above 0, a true flag, a date on record, a
    service that is running (not "none"). A reason for being on the list is only ever phrased from these."""
    if _missing(value):
        return False
    feature = CATALOGUE.get(name)
    kind = feature.kind if feature is not None else "numeric"
    if kind == "flag":
        return bool(value)
    if kind == "categorical":
        return str(value) != "none"
    if feature is not None and feature.ago:
        return True
    return value != 0


def explain_phrase(
    name: str, value: object, currency: str = REFERENCE_CURRENCY, record: Mapping[str, Any] | None = None
) -> str:
    """A feature's value in plain words, e.g. "1 emergency admission in the last 12 months", "has heart failure",
    "sex: female", "£1,234 of hospital inpatient costs in the last 12 months", "last emergency admission 11 months
    ago". Amounts are written in `currency`; with the person's whole feature `record`, an engineered value is
    phrased from the counts it is made of."""
    feature = CATALOGUE[name]
    if _missing(value):
        return feature.template_missing or f"{_lower_first(feature.label)} not recorded"
    if feature.phrase_from_record is not None and record is not None:
        words = feature.phrase_from_record(record)
        if words is not None:
            return words
    if feature.kind == "flag":
        return feature.template if value else (feature.template_off or f"not {feature.template}")
    if feature.kind == "categorical":
        words = feature.value_labels.get(str(value), str(value))
        return feature.template.format(value=words)
    if feature.template_one is not None and value == 1:
        return feature.template_one
    extra = {"ago": ago_words(float(value))} if feature.ago else {}  # type: ignore[arg-type]
    return feature.template.format(value=value, money=money_prefix(currency), **extra)
