"""Clinical constants of the generator: long-term conditions, their effect on need, ICD-10 and BNF codes.

Prevalence parameters are hand-set so the overall prevalences land near QOF 2024/25 figures for England
(hypertension ~14%, depression ~13% of adults, diabetes ~7.5%, asthma ~6.5%, CKD ~4%, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConditionSpec:
    code: str  # long_term_condition codelist code
    intercept: float  # logit prevalence at age 50, average deprivation, average morbidity
    age_slope: float  # logit change per 10 years of age
    deprivation_slope: float  # logit change from least (-1) to most (+1) deprived, per unit
    need_log_rr: float  # effect on the person's log need (emergency admissions, deaths, ...)
    frailty_weight: float  # contribution to the frailty index
    icd10: str  # primary diagnosis code used when the condition causes an admission
    medicines: tuple[str, ...]  # BNF codes of regular medicines for the condition
    on_medicine_share: float  # share of people with the condition taking each listed medicine
    min_age: float = 0.0  # no diagnosis before this age


CONDITIONS: tuple[ConditionSpec, ...] = (
    ConditionSpec(
        "hypertension", -2.20, 0.85, 0.25, 0.05, 0.02, "I10", ("0205051R0AAAAAA", "0206020A0AAAAAA"), 0.7, 25
    ),
    ConditionSpec("depression", -2.10, -0.02, 0.35, 0.2, 0.02, "F329", ("0403030Q0AAAAAA",), 0.55, 12),
    ConditionSpec("diabetes", -3.05, 0.6, 0.4, 0.3, 0.04, "E119", ("0601022B0AAABAB", "0212000B0AAADAD"), 0.8, 10),
    ConditionSpec("asthma", -2.95, -0.02, 0.2, 0.2, 0.01, "J459", ("0301011R0AAAPAP", "0302000C0AACJCJ"), 0.7, 3),
    ConditionSpec("ckd", -4.60, 1.05, 0.25, 0.4, 0.04, "N183", ("0212000B0AAADAD",), 0.5, 30),
    ConditionSpec(
        "chd", -4.70, 0.9, 0.35, 0.3, 0.04, "I251", ("0212000B0AAADAD", "0204000H0AAAHAH", "0209000A0AAABAB"), 0.8, 30
    ),
    ConditionSpec("af", -5.30, 1.05, 0.1, 0.35, 0.04, "I48", ("0208020Z0AAAAAA", "0204000H0AAAHAH"), 0.8, 30),
    ConditionSpec("cancer", -3.90, 0.6, 0.1, 0.5, 0.04, "C349", ("0803041B0AAAAAA",), 0.3, 15),
    ConditionSpec("copd", -5.45, 0.9, 0.7, 0.7, 0.05, "J440", ("0302000C0AACJCJ", "0301040X0AAAAAA"), 0.85, 35),
    ConditionSpec("stroke_tia", -5.45, 0.95, 0.35, 0.4, 0.06, "I639", ("0212000B0AAADAD", "0209000C0AAABAB"), 0.8, 20),
    ConditionSpec(
        "heart_failure", -6.35, 1.05, 0.4, 0.8, 0.07, "I509", ("0202020L0AABDBD", "0204000H0AAAHAH"), 0.85, 35
    ),
    ConditionSpec("dementia", -8.40, 1.6, 0.2, 0.6, 0.1, "F03", ("0411000D0AAAHAH",), 0.5, 50),
    ConditionSpec("serious_mental_illness", -5.00, -0.05, 0.6, 0.5, 0.03, "F209", ("0402010ABAAABAB",), 0.8, 16),
    ConditionSpec("epilepsy", -5.40, 0.0, 0.3, 0.3, 0.03, "G409", ("0408010H0AAAAAA",), 0.9, 1),
    ConditionSpec("learning_disability", -5.80, -0.1, 0.3, 0.4, 0.05, "F79", ("0408010H0AAAAAA",), 0.2, 1),
    ConditionSpec("osteoporosis", -6.50, 1.1, 0.1, 0.2, 0.04, "M819", ("0606020A0AAAAAA", "0906040G0AAAAAA"), 0.7, 45),
    ConditionSpec("palliative_care", -7.50, 0.75, 0.1, 1.0, 0.08, "C80", ("0407020Q0AAACAC",), 0.6, 18),
)
CONDITION_CODES: tuple[str, ...] = tuple(c.code for c in CONDITIONS)
DEMENTIA = CONDITION_CODES.index("dementia")
LEARNING_DISABILITY = CONDITION_CODES.index("learning_disability")
SERIOUS_MENTAL_ILLNESS = CONDITION_CODES.index("serious_mental_illness")

# Mean cost of one issue of a regular medicine (GBP, drug tariff ballpark), by BNF chapter prefix.
MEDICINE_ISSUE_COST: dict[str, float] = {
    "02": 4.0,
    "03": 22.0,
    "04": 6.0,
    "06": 9.0,
    "08": 60.0,
    "09": 5.0,
}
# Acute (one-off) prescriptions: antibiotics, analgesics, skin and eye preparations.
ACUTE_MEDICINES: tuple[str, ...] = (
    "0501013B0AAABAB",
    "0501030I0AAABAB",
    "0407010H0AAAMAM",
    "1001010J0AAADAD",
    "1302011F0AAAAAA",
    "1106000L0AAAAAA",
    "0106020C0AAAAAA",
    "0304010G0AAAAAA",
)
ACUTE_ISSUE_COST = 3.5

# Admission diagnoses not tied to a condition: general acute medicine, and the frailty-flavoured ones
# (several are in the Hospital Frailty Risk Score list) used more for frail people.
ACUTE_DIAGNOSES: tuple[str, ...] = ("J189", "N390", "R074", "K297", "R104", "J22", "A099", "L031", "S720", "T814")
FRAILTY_DIAGNOSES: tuple[str, ...] = ("R296", "W19", "F05", "L89", "E87", "R26", "N39", "J18", "G81", "F00", "F01")
ELECTIVE_DIAGNOSES: tuple[str, ...] = ("M171", "H251", "K802", "N40", "K409", "M161", "D126", "Z511")
# Treatment function codes: general medicine, geriatric medicine, general surgery, T&O, respiratory.
EMERGENCY_SPECIALTIES: tuple[str, ...] = ("300", "430", "100", "110", "340")
EMERGENCY_SPECIALTY_WEIGHTS: tuple[float, ...] = (0.5, 0.15, 0.15, 0.12, 0.08)
ELECTIVE_SPECIALTIES: tuple[str, ...] = ("100", "110", "130", "101", "300")
ELECTIVE_SPECIALTY_WEIGHTS: tuple[float, ...] = (0.3, 0.3, 0.2, 0.1, 0.1)
OUTPATIENT_SPECIALTIES: tuple[str, ...] = ("300", "430", "100", "110", "340", "130", "320", "502")
OUTPATIENT_SPECIALTY_WEIGHTS: tuple[float, ...] = (0.2, 0.05, 0.15, 0.2, 0.08, 0.12, 0.1, 0.1)


def medicine_issue_cost(bnf_code: str) -> float:
    return MEDICINE_ISSUE_COST.get(bnf_code[:2], 8.0)
