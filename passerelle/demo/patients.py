"""One synthetic person's history: observation periods, diseases, treatments, visits, values.

The simulation is deliberately simple but causal, so that the study language has something real
to find: risk factors (age, sex, smoking, obesity) raise the chance of chronic diseases; each
disease brings its treatment (type 2 diabetes -> metformin and HbA1c tests, hypertension ->
lisinopril and higher blood pressure, coronary disease or infarction -> aspirin, osteoarthritis
-> courses of celecoxib or diclofenac); NSAID and aspirin exposure raise the hazard of a
gastrointestinal bleed in the following days. Every draw goes through the one `random.Random`
given, in a fixed order, so a seed gives the same history.

Rates are named constants below; `docs/demo.md` describes them and the deliberate quirks.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from passerelle.demo import vocabulary as v

# -- named rates (per person, or per person-year where it says so) -----------------------------
SHARE_FEMALE = 0.52
SHARE_RACE_RECORDED = 0.3  # French hospitals rarely record race: concept 0 otherwise
SHARE_TWO_PERIODS = 0.15
SHARE_OBSERVED_TO_WINDOW_END = 0.5
LATE_ENROLMENT_SHARE = 0.05  # quirk: first period starts after the person's first records
UNITLESS_WEIGHT_SHARE = 0.01  # quirk: body weight recorded without a unit (unit concept 0)
NSAID_TREATED_SHARE = 0.8  # of persons with osteoarthritis
ACUTE_PAIN_NSAID_SHARE = 0.04  # of adults without osteoarthritis: one short diclofenac course
METFORMIN_SHARE, LISINOPRIL_SHARE, ASPIRIN_CAD_SHARE, ASPIRIN_MI_SHARE = 0.85, 0.65, 0.7, 0.85
# Gastrointestinal bleed hazards per person-year: baseline, and added during (and 14 days
# after) each exposure.
GI_BLEED_BASE_RATE = 0.003
GI_BLEED_CELECOXIB_RATE = 0.12
GI_BLEED_DICLOFENAC_RATE = 0.2
GI_BLEED_ASPIRIN_RATE = 0.01
GI_BLEED_RECURRENCE = 0.12
NSAID_STOPPED_AFTER_BLEED = 0.75
MI_FATAL_SHARE = 0.1
# Of the follow-up visits, the share that are an inpatient stay or an emergency-room visit.
ROUTINE_INPATIENT_SHARE, ROUTINE_EMERGENCY_SHARE = 0.05, 0.06
ERA_GAP_DAYS = 30

DAY = timedelta(days=1)


@dataclass(slots=True)
class Visit:
    kind: int
    start: date
    end: date


@dataclass(slots=True)
class Event:
    """One clinical record before ids are assigned; `domain` names its CDM table."""

    domain: str
    concept: int
    start: date
    visit: int | None = None  # index into History.visits
    end: date | None = None
    value: float | None = None
    unit: int | None = None
    source_value: str | None = None
    source_concept: int | None = None
    days_supply: int | None = None
    quantity: float | None = None


@dataclass
class History:
    gender: int
    birth: date
    race: int
    ethnicity: int
    location: int  # index into the site's locations
    periods: list[tuple[date, date]]
    visits: list[Visit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    death: tuple[date, int] | None = None
    _visit_index: dict[tuple[date, int], int] = field(default_factory=dict, repr=False)

    def visit(self, day: date, kind: int, length: int = 0) -> int:
        """The index of this person's visit of `kind` starting on `day` (created if needed)."""
        key = (day, kind)
        if key not in self._visit_index:
            self._visit_index[key] = len(self.visits)
            self.visits.append(Visit(kind, day, day + timedelta(days=length)))
        return self._visit_index[key]


def _days(a: date, b: date) -> int:
    return (b - a).days


class _Sim:
    """The simulation of one person (state shared by the small steps below)."""

    def __init__(self, rng: random.Random, window: tuple[date, date], n_locations: int) -> None:
        self.rng = rng
        self.window = window
        self.n_locations = n_locations

    # -- helpers -------------------------------------------------------------------------------
    def observed_day(self, periods: list[tuple[date, date]]) -> date:
        total = sum(_days(s, e) + 1 for s, e in periods)
        k = self.rng.randrange(total)
        for s, e in periods:
            n = _days(s, e) + 1
            if k < n:
                return s + timedelta(days=k)
            k -= n
        raise AssertionError("unreachable")

    @staticmethod
    def period_of(periods: list[tuple[date, date]], day: date) -> tuple[date, date] | None:
        for s, e in periods:
            if s <= day <= e:
                return (s, e)
        return None

    def age(self, day: date) -> int:
        return day.year - self.h.birth.year

    # -- the person ----------------------------------------------------------------------------
    def run(self) -> History:
        rng = self.rng
        we = self.window[1]
        gender = v.FEMALE if rng.random() < SHARE_FEMALE else v.MALE
        latest_birth = min(2010, we.year - 2)
        yob = min(latest_birth, max(1930, int(rng.triangular(1930, latest_birth + 1, 1958))))
        birth = date(yob, rng.randint(1, 12), rng.randint(1, 28))
        if rng.random() < SHARE_RACE_RECORDED:
            race = rng.choices((v.WHITE, v.BLACK, v.ASIAN), (0.8, 0.12, 0.08))[0]
            ethnicity = v.NOT_HISPANIC if rng.random() < 0.95 else v.HISPANIC
        else:
            race, ethnicity = v.NO_MATCH, v.NO_MATCH
        self.h = History(
            gender, birth, race, ethnicity, rng.randrange(self.n_locations), self._periods(birth)
        )
        self.male = gender == v.MALE
        mid = self.h.periods[0][0] + (self.h.periods[-1][1] - self.h.periods[0][0]) / 2
        self.mid_age = self.age(mid)
        adult = self.mid_age >= 18
        self.smoker = adult and rng.random() < (0.3 if self.male else 0.2)
        self.height = rng.gauss(1.76, 0.07) if self.male else rng.gauss(1.63, 0.065)
        self.bmi = min(48.0, max(17.0, rng.gauss(26.5, 4.5)))
        self.bmi_drift = rng.gauss(0.1, 0.2)  # BMI points per year
        self.obese = adult and self.bmi >= 30
        self.fills: list[Event] = []
        self._chronic()
        self._treatments()
        self._myocardial_infarction()
        self._nsaids()
        self._gi_bleed()
        self._death()
        self._routine_visits()
        self._finish()
        return self.h

    def _periods(self, birth: date) -> list[tuple[date, date]]:
        rng = self.rng
        ws, we = self.window
        first = max(ws, birth)
        total = _days(first, we)
        s1 = first if rng.random() < 0.4 else first + timedelta(days=rng.randint(0, total - 730))
        remaining = _days(s1, we)
        if rng.random() < SHARE_TWO_PERIODS and remaining >= 3 * 365:
            e1 = s1 + timedelta(days=rng.randint(365, remaining - 2 * 365))
            s2 = e1 + timedelta(days=rng.randint(60, 365))
            e2 = (
                we
                if rng.random() < SHARE_OBSERVED_TO_WINDOW_END
                else s2 + timedelta(days=rng.randint(365, _days(s2, we)))
            )
            return [(s1, e1), (s2, e2)]
        if rng.random() < SHARE_OBSERVED_TO_WINDOW_END:
            return [(s1, we)]
        return [(s1, s1 + timedelta(days=rng.randint(min(730, remaining), remaining)))]

    def _onset(self, p: float) -> date | None:
        """A chronic disease: absent, prevalent (recorded early) or incident during follow-up."""
        rng = self.rng
        if rng.random() >= p:
            return None
        s, e = self.h.periods[0]
        if rng.random() < 0.6:
            return min(e, s + timedelta(days=rng.randint(0, 180)))
        return self.observed_day(self.h.periods)

    def _diagnose(self, concept: int, day: date, kind: int = v.OUTPATIENT) -> None:
        self.h.events.append(Event("condition", concept, day, self.h.visit(day, kind)))

    def _chronic(self) -> None:
        a, rng = self.mid_age, self.rng
        p_dm = 0.005 if a < 30 else min(0.3, 0.02 + 0.004 * (a - 30))
        self.dm = self._onset(p_dm * (1.8 if self.obese else 1.0))
        p_htn = 0.01 if a < 25 else min(0.55, 0.03 + 0.008 * (a - 25))
        self.htn = self._onset(p_htn * (1.3 if self.obese else 1.0))
        p_cad = 0.003 if a < 40 else min(0.25, 0.01 + 0.004 * (a - 40))
        p_cad *= (1.6 if self.male else 1) * (1.5 if self.dm else 1) * (1.3 if self.htn else 1)
        self.cad = self._onset(min(0.4, p_cad * (1.5 if self.smoker else 1)))
        p_copd = 0.002 if a < 40 else 0.02 + 0.002 * (a - 40)
        self.copd = self._onset(min(0.35, p_copd * (4 if self.smoker else 1)))
        p_oa = 0.005 if a < 35 else min(0.45, 0.02 + 0.006 * (a - 35))
        p_oa *= (1.3 if not self.male else 1) * (1.3 if self.obese else 1)
        self.oa = self._onset(p_oa)
        # How each disease is coded: some records use a more specific child concept.
        self.htn_code = v.ESSENTIAL_HYPERTENSION if rng.random() < 0.7 else v.HYPERTENSION
        self.copd_code = v.EMPHYSEMA if rng.random() < 0.25 else v.COPD
        if self.dm:
            self._diagnose(v.T2DM, self.dm)
            for concept, p in ((v.T2DM_NEUROPATHY, 0.12), (v.T2DM_RETINOPATHY, 0.08)):
                later = self.dm + timedelta(days=rng.randint(180, 1500))
                if rng.random() < p and self.period_of(self.h.periods, later):
                    self._diagnose(concept, later)
        if self.htn:
            self._diagnose(self.htn_code, self.htn)
        if self.cad:
            self._diagnose(v.CORONARY_ATHEROSCLEROSIS, self.cad)
            self._procedure(v.ECG, self.cad)
        if self.copd:
            self._diagnose(self.copd_code, self.copd)
            self._procedure(v.CHEST_XRAY, self.copd)
        if self.oa:
            self._diagnose(v.OSTEOARTHRITIS, self.oa)

    def _procedure(self, concept: int, day: date, visit: int | None = None) -> None:
        if visit is None:
            visit = self.h.visit(day, v.OUTPATIENT)
        self.h.events.append(Event("procedure", concept, day, visit))

    # -- drugs ---------------------------------------------------------------------------------
    def _fill(self, product: int, day: date, supply: int, first: bool) -> Event:
        source = {
            v.CELECOXIB_200: (v.NDC_CELECOXIB_200, "00025152531"),
            v.DICLOFENAC_75: (v.NDC_DICLOFENAC_75, "00781178901"),
        }.get(product)
        src_concept, src_value = source if source else (v.NO_MATCH, v.CONCEPTS_BY_ID[product].code)
        ev = Event(
            "drug",
            product,
            day,
            self.h.visit(day, v.OUTPATIENT) if first else None,
            end=day + timedelta(days=supply - 1),
            source_value=src_value,
            source_concept=src_concept,
            days_supply=supply,
            quantity=float(supply),
        )
        self.fills.append(ev)
        return ev

    def _continuous(self, product: int, start: date, supplies: tuple[int, ...]) -> None:
        """A long-term treatment: refills until stopped or follow-up ends."""
        rng = self.rng
        day, first = start, True
        while True:
            period = self.period_of(self.h.periods, day)
            if period is None:
                later = [s for s, _ in self.h.periods if s > day]
                if not later:
                    return
                day, first = later[0] + timedelta(days=rng.randint(0, 60)), True
                continue
            supply = rng.choice(supplies)
            self._fill(product, day, supply, first)
            first = False
            if rng.random() < 0.015:
                return
            gap = rng.randint(60, 200) if rng.random() < 0.05 else rng.randint(-3, 12)
            day = day + timedelta(days=supply + gap)

    def _treatments(self) -> None:
        rng = self.rng
        if self.dm and rng.random() < METFORMIN_SHARE:
            self._continuous(v.METFORMIN_500_ER, self.dm + timedelta(rng.randint(0, 90)), (30, 90))
        if self.htn and rng.random() < LISINOPRIL_SHARE:
            self._continuous(v.LISINOPRIL_10, self.htn + timedelta(rng.randint(0, 60)), (30, 90))
        self.on_aspirin = bool(self.cad and rng.random() < ASPIRIN_CAD_SHARE)
        if self.cad and self.on_aspirin:
            self._continuous(v.ASPIRIN_81, self.cad + timedelta(rng.randint(0, 30)), (90,))

    def _nsaids(self) -> None:
        rng = self.rng
        if self.oa and rng.random() < NSAID_TREATED_SHARE:
            prefers_celecoxib = rng.random() < 0.45
            day = self.oa + timedelta(days=rng.randint(0, 120))
            while self.period_of(self.h.periods, day):
                if rng.random() < 0.2:
                    prefers_celecoxib = not prefers_celecoxib
                product = v.CELECOXIB_200 if prefers_celecoxib else v.DICLOFENAC_75
                for i in range(rng.randint(1, 4)):
                    if not self.period_of(self.h.periods, day):
                        break
                    self._fill(product, day, 30, i == 0)
                    day += timedelta(days=30 + rng.randint(-2, 10))
                day += timedelta(days=rng.randint(60, 420))
        elif not self.oa and self.mid_age >= 18 and rng.random() < ACUTE_PAIN_NSAID_SHARE:
            self._fill(v.DICLOFENAC_75, self.observed_day(self.h.periods), 10, True)

    # -- acute events --------------------------------------------------------------------------
    def _myocardial_infarction(self) -> None:
        rng, a = self.rng, self.mid_age
        rate = 0.0008 if a < 40 else 0.0015 * (1 + (a - 40) / 15)
        rate *= (4 if self.cad else 1) * (1.8 if self.dm else 1) * (1.4 if self.htn else 1)
        rate *= (1.5 if self.male else 1) * (1.8 if self.smoker else 1)
        years = sum(_days(s, e) for s, e in self.h.periods) / 365.25
        self.mi_death: date | None = None
        if rng.random() >= 1 - math.exp(-rate * years):
            return
        day = self.observed_day(self.h.periods)
        stay = self.h.visit(day, v.INPATIENT, rng.randint(3, 10))
        concept = v.ACUTE_MI if rng.random() < 0.65 else v.MI
        end = self.h.visits[stay].end
        self.h.events.append(Event("condition", concept, day, stay, end=end))
        self._procedure(v.ECG, day, stay)
        if rng.random() < 0.45:
            self._procedure(v.PCI, day + timedelta(days=rng.randint(0, 2)), stay)
        if not self.cad and rng.random() < 0.7:
            self.cad = day
            self.h.events.append(Event("condition", v.CORONARY_ATHEROSCLEROSIS, day, stay))
        if rng.random() < MI_FATAL_SHARE:
            period = self.period_of(self.h.periods, day)
            assert period is not None
            self.mi_death = min(period[1], day + timedelta(days=rng.randint(0, 20)))
        elif not self.on_aspirin and rng.random() < ASPIRIN_MI_SHARE:
            self.on_aspirin = True
            self._continuous(v.ASPIRIN_81, end, (90,))

    def _hazard_date(self, start: date, end: date, rate: float) -> date | None:
        length = _days(start, end) + 1
        if length <= 0 or self.rng.random() >= 1 - math.exp(-rate * length / 365.25):
            return None
        return start + timedelta(days=self.rng.randrange(length))

    def _gi_bleed(self) -> None:
        rng = self.rng
        base = GI_BLEED_BASE_RATE * (1 + max(0, self.mid_age - 50) / 15)
        candidates = [
            d for s, e in self.h.periods if (d := self._hazard_date(s, e, base)) is not None
        ]
        extra = {
            v.CELECOXIB_200: GI_BLEED_CELECOXIB_RATE,
            v.DICLOFENAC_75: GI_BLEED_DICLOFENAC_RATE,
            v.ASPIRIN_81: GI_BLEED_ASPIRIN_RATE,
        }
        for fill in self.fills:
            rate = extra.get(fill.concept)
            assert fill.end is not None
            if rate and (d := self._hazard_date(fill.start + DAY, fill.end + 14 * DAY, rate)):
                candidates.append(d)
        candidates = [d for d in candidates if self.period_of(self.h.periods, d)]
        if not candidates:
            return
        first = min(candidates)
        self._bleed(first)
        again = first + timedelta(days=rng.randint(30, 365))
        if rng.random() < GI_BLEED_RECURRENCE and self.period_of(self.h.periods, again):
            self._bleed(again)
        if rng.random() < NSAID_STOPPED_AFTER_BLEED:
            nsaids = (v.CELECOXIB_200, v.DICLOFENAC_75)
            dropped = {id(f) for f in self.fills if f.concept in nsaids and f.start > first}
            self.fills = [f for f in self.fills if id(f) not in dropped]

    def _bleed(self, day: date) -> None:
        rng, h = self.rng, self.h
        if rng.random() < 0.55:
            visit = h.visit(day, v.EMERGENCY, rng.randint(0, 1))
            if rng.random() < 0.5:
                visit = h.visit(h.visits[visit].end, v.INPATIENT, rng.randint(2, 8))
        else:
            visit = h.visit(day, v.INPATIENT, rng.randint(2, 8))
        if rng.random() < 0.3:
            concept, src, src_concept = v.ACUTE_GI_BLEED, "61401005", v.NO_MATCH
        else:
            concept, src, src_concept = v.GI_BLEED, "K92.2", v.ICD10_GI_BLEED
        end = h.visits[visit].end
        h.events.append(
            Event(
                "condition",
                concept,
                day,
                visit,
                end=end,
                source_value=src,
                source_concept=src_concept,
            )
        )
        if rng.random() < 0.25:
            self._procedure(v.TRANSFUSION, day, visit)
        if rng.random() < 0.35:
            self._procedure(v.COLONOSCOPY, min(end, day + timedelta(days=rng.randint(0, 5))), visit)

    def _death(self) -> None:
        rng, a = self.rng, self.mid_age
        rate = 0.0004 * math.exp((a - 40) / 10)
        rate *= (1.8 if self.copd else 1) * (1.5 if self.cad else 1) * (1.3 if self.dm else 1)
        s, e = self.h.periods[-1]
        day = None
        if _days(s, e) > 180:
            day = self._hazard_date(s + timedelta(days=180), e, min(rate, 0.5))
        cause = v.COPD if self.copd and rng.random() < 0.3 else v.NO_MATCH
        if self.mi_death and (day is None or self.mi_death < day):
            day, cause = self.mi_death, v.ACUTE_MI
        if day is not None:
            self.h.death = (day, cause)

    # -- follow-up visits ----------------------------------------------------------------------
    def _on(self, product: int, day: date) -> bool:
        for f in self.fills:
            if f.concept == product and f.start <= day and f.end and day <= f.end + 30 * DAY:
                return True
        return False

    def _routine_visits(self) -> None:
        rng, h = self.rng, self.h
        chronic = [
            (d, code)
            for d, code in (
                (self.dm, v.T2DM),
                (self.htn, self.htn_code),
                (self.cad, v.CORONARY_ATHEROSCLEROSIS),
                (self.copd, self.copd_code),
                (self.oa, v.OSTEOARTHRITIS),
            )
            if d
        ]
        rate = min(4.0, 0.8 + 0.7 * len(chronic))
        obesity_noted = False
        smoking_noted = False
        for s, e in h.periods:
            day = s + timedelta(days=int(rng.expovariate(rate) * 365.25 / 2))
            while day <= e:
                draw = rng.random()
                if draw < ROUTINE_INPATIENT_SHARE:
                    visit = h.visit(day, v.INPATIENT, min(_days(day, e), rng.randint(1, 7)))
                elif draw < ROUTINE_INPATIENT_SHARE + ROUTINE_EMERGENCY_SHARE:
                    visit = h.visit(day, v.EMERGENCY)
                else:
                    visit = h.visit(day, v.OUTPATIENT)
                for onset, code in chronic:
                    if onset <= day and rng.random() < 0.35:
                        h.events.append(Event("condition", code, day, visit))
                self._vitals(day, visit)
                bmi = self.weight_at(day) / self.height**2
                if self.age(day) >= 18 and bmi >= 30 and not obesity_noted:
                    obesity_noted = True
                    h.events.append(Event("observation", v.OBESITY, day, visit))
                if (
                    self.smoker
                    and self.age(day) >= 18
                    and (not smoking_noted or rng.random() < 0.25)
                ):
                    smoking_noted = True
                    h.events.append(
                        Event(
                            "observation",
                            v.SMOKES_DAILY,
                            day,
                            visit,
                            source_value="tabac quotidien",
                        )
                    )
                day += timedelta(days=max(7, int(rng.expovariate(rate) * 365.25)))

    def weight_at(self, day: date) -> float:
        age = self.age(day)
        if age < 18:
            return (3.5 + 3.2 * age) * (self.bmi / 26.5)
        years = _days(self.h.periods[0][0], day) / 365.25
        return self.height**2 * min(55.0, max(16.0, self.bmi + self.bmi_drift * years))

    def _vitals(self, day: date, visit: int) -> None:
        rng, h, age = self.rng, self.h, self.age(day)
        if age >= 18 and rng.random() < 0.75:
            sbp = 118 + 0.35 * (age - 40) + rng.gauss(0, 10)
            if self.htn and self.htn <= day:
                sbp += 8 if self._on(v.LISINOPRIL_10, day) else 22
            dbp = 0.55 * sbp + 10 + rng.gauss(0, 6)
            h.events.append(
                Event(
                    "measurement",
                    v.SYSTOLIC_BP,
                    day,
                    visit,
                    value=round(sbp),
                    unit=v.MMHG,
                    source_value="8480-6",
                )
            )
            h.events.append(
                Event(
                    "measurement",
                    v.DIASTOLIC_BP,
                    day,
                    visit,
                    value=round(dbp),
                    unit=v.MMHG,
                    source_value="8462-4",
                )
            )
        if rng.random() < 0.65:
            w = round(self.weight_at(day) + rng.gauss(0, 1.2), 1)
            unit = v.NO_MATCH if rng.random() < UNITLESS_WEIGHT_SHARE else v.KILOGRAM
            h.events.append(
                Event(
                    "measurement",
                    v.BODY_WEIGHT,
                    day,
                    visit,
                    value=w,
                    unit=unit,
                    source_value="29463-7",
                )
            )
            if age >= 18 and rng.random() < 0.6:
                h.events.append(
                    Event(
                        "measurement",
                        v.BMI,
                        day,
                        visit,
                        value=round(w / self.height**2, 1),
                        unit=v.KG_PER_M2,
                        source_value="39156-5",
                    )
                )
        diabetic = bool(self.dm and self.dm <= day)
        if (diabetic and rng.random() < 0.55) or (age >= 18 and rng.random() < 0.06):
            if diabetic:
                mean, sd = (7.1, 0.7) if self._on(v.METFORMIN_500_ER, day) else (8.3, 1.1)
            else:
                mean, sd = 5.5, 0.35
            h.events.append(
                Event(
                    "measurement",
                    v.HBA1C,
                    day,
                    visit,
                    value=round(max(4.0, rng.gauss(mean, sd)), 1),
                    unit=v.PERCENT,
                    source_value="4548-4",
                )
            )

    # -- end of life, and the quirks -----------------------------------------------------------
    def _finish(self) -> None:
        h, rng = self.h, self.rng
        h.events.extend(self.fills)
        if h.death:
            dday = h.death[0]
            h.periods = [(s, min(e, dday)) for s, e in h.periods if s <= dday]
            h.events = [ev for ev in h.events if ev.start <= dday]
            for ev in h.events:
                if ev.end and ev.end > dday:
                    ev.end = dday
            for vis in h.visits:
                if vis.end > dday >= vis.start:
                    vis.end = dday
        s, e = h.periods[0]
        if rng.random() < LATE_ENROLMENT_SHARE and _days(s, e) > 3 * 365:
            h.periods[0] = (s + timedelta(days=rng.randint(60, 365)), e)


def simulate(rng: random.Random, window: tuple[date, date], n_locations: int) -> History:
    """Draw one person's complete history from `rng`."""
    return _Sim(rng, window, n_locations).run()
