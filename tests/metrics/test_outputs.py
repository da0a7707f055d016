"""participant_metrics / weekly_metrics / write_metrics and `rehabstats metrics` (METRICS.md §9)."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_support import run_in_process
from cohort_builder import cohort_from_rows, morning_pain, sessions_on

from rehabstats import AnalysisConfig, write_cohort
from rehabstats.metrics.outputs import (
    OUTPUT_FILES,
    PARTICIPANT_COLUMNS,
    WEEKLY_COLUMNS,
    participant_metrics,
    weekly_metrics,
)

# §9 and §11, written out here independently of the module's constant
CONTRACT_PARTICIPANT_COLUMNS = """participant_id, site, arm, tendinopathy_type, follow_up_days,
withdrawn, sessions_scheduled, sessions_completed, adherence_sessions, adherence_volume, adherent,
load_stagnant_weeks, load_stagnant, pain_morning_week1, pain_morning_week12, pain_change,
session_days, pmm_violation_days, pmm_violation_rate, flares, weeks_rising, visa_a_baseline,
visa_a_week12, visa_a_change_12, visa_a_responder_12, highest_stage, reached_stage_2,
reached_stage_3, reached_stage_4, days_to_stage_2, days_to_stage_3, days_to_stage_4, regressions,
checkpoint_passed, progressed_without_checkpoint, insertional_step_deviation, last_session_day,
stopped_early, at_risk_start_day, relapsed, days_to_relapse, relapse_source,
person_weeks_at_risk, tempo_sessions_known, fast_tempo_sessions, fast_tempo_rate,
back_to_back_days, first_run_day, run_days, running_pain_days, acwr_max, acwr_spike_days,
volume_spike_weeks, rts_criteria_day, returned_before_criteria"""


def contract(text: str) -> list[str]:
    return [c.strip() for c in text.replace("\n", " ").split(",")]


def small_cohort():
    """Two participants, enrolled 2024-01-01, cut-off on day 99 (2024-04-09).

    a: 4 sessions in week 1 (3 completed), stage 1 then 2 from day 14; morning pain 5 on days
       0-6 and 3 on days 77-80; returns to running on day 90.
    w: withdrawn on day 10 with sessions on days 1, 8 and 12 (day 12 after withdrawal).
    """
    return cohort_from_rows(
        [
            {"participant_id": "a"},
            {"participant_id": "w", "arm": "hsr", "withdrawn_on": "2024-01-11"},
        ],
        data_cutoff="2024-04-09",
        sessions=sessions_on("a", [0, 2, 4])
        + [{"participant_id": "a", "day": 5, "completed_sets": 0, "completed_reps": 0}]
        + sessions_on("a", [14, 16], stage=2)
        + sessions_on("w", [1, 8, 12]),
        pain=morning_pain("a", dict.fromkeys(range(7), 5))
        + morning_pain("a", dict.fromkeys(range(77, 81), 3)),
        events=[{"participant_id": "a", "day": 90, "event": "return_to_running"}],
    )


def test_participant_metrics_columns_and_values():
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        cohort = small_cohort()
    pm = participant_metrics(cohort).set_index("participant_id")
    assert list(PARTICIPANT_COLUMNS) == contract(CONTRACT_PARTICIPANT_COLUMNS)
    assert list(pm.reset_index().columns[: len(PARTICIPANT_COLUMNS)]) == list(PARTICIPANT_COLUMNS)
    a, w = pm.loc["a"], pm.loc["w"]
    # a: cut-off 2024-04-09 is day 99; w: withdrawn on day 10
    assert (a["follow_up_days"], w["follow_up_days"]) == (99, 10)
    assert bool(w["withdrawn"]) and not bool(a["withdrawn"])
    # a: 6 scheduled, 5 completed (day 5 missed) -> 5/6
    assert (a["sessions_scheduled"], a["sessions_completed"]) == (6, 5)
    assert a["adherence_sessions"] == pytest.approx(5 / 6)
    # w: the day-12 session is after withdrawal -> 2 scheduled, both completed
    assert (w["sessions_scheduled"], w["adherence_sessions"]) == (2, 1.0)
    # pain: week 1 mean 5, week 12 (days 77-83) mean 3 -> change -2
    assert (a["pain_morning_week1"], a["pain_morning_week12"], a["pain_change"]) == (5, 3, -2)
    # stage 2 first scheduled on day 14; highest stage 2
    assert (a["days_to_stage_2"], a["highest_stage"]) == (14, 2)
    # at risk from day 90, no relapse until day 99 -> 9 days = 9/7 person-weeks
    assert a["at_risk_start_day"] == 90 and a["person_weeks_at_risk"] == pytest.approx(9 / 7)
    assert not bool(a["relapsed"])
    assert pd.isna(w["relapsed"])  # never at risk


def test_weekly_metrics_columns_stage_and_pain():
    with pytest.warns(UserWarning):
        cohort = small_cohort()
    weekly = weekly_metrics(cohort)
    assert list(weekly.columns[: len(WEEKLY_COLUMNS)]) == contract(
        "participant_id, week, stage, sessions_scheduled, sessions_completed, adherence_sessions, "
        "pain_morning_mean, running_minutes"
    )
    a = weekly[weekly["participant_id"] == "a"].set_index("week")
    # a is followed through the whole window: weeks 1..12
    assert list(a.index) == list(range(1, 13))
    # week 3 (days 14-20) holds the stage-2 sessions; week 2 has none (stage still 1)
    assert (a.loc[2, "stage"], a.loc[3, "stage"], a.loc[12, "stage"]) == (1, 2, 2)
    assert a.loc[2, "sessions_scheduled"] == 0 and pd.isna(a.loc[2, "adherence_sessions"])
    assert a.loc[1, "pain_morning_mean"] == 5 and a.loc[12, "pain_morning_mean"] == 3
    w = weekly[weekly["participant_id"] == "w"]
    # withdrawn on day 10 (week 2): weeks 1 and 2 only
    assert list(w["week"]) == [1, 2]


def test_cli_metrics_writes_every_file(tmp_path):
    with pytest.warns(UserWarning):
        cohort = small_cohort()
    folder = write_cohort(cohort, tmp_path / "cohort")
    config = tmp_path / "config.yaml"
    config.write_text("pain_limit: 5\n")
    out = tmp_path / "out"
    result = run_in_process(
        "metrics", str(folder), "--out", str(out),
        "--by", "arm", "--config", str(config), "--data-cutoff", "2024-04-09",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    pm = pd.read_csv(out / "participant_metrics.csv", keep_default_na=False, dtype=str)
    # booleans as True/False, missing values as empty fields
    assert set(pm["withdrawn"]) == {"True", "False"}
    assert pm.set_index("participant_id").loc["w", "relapsed"] == ""
    rates = pd.read_csv(out / "relapse_rates.csv")
    assert set(rates["group"]) <= {"staged", "hsr"}
    acwr = pd.read_csv(out / "relapse_acwr.csv")
    assert list(acwr.columns[:8]) == contract(
        "group, exposed_relapses, exposed_person_weeks, unexposed_relapses, "
        "unexposed_person_weeks, rate_ratio, ci_low, ci_high"
    )
    # by arm: a (staged) returned on day 90 without runs: 9 unexposed days, no relapse, so no
    # ratio; w (hsr) never returned: no person-time
    acwr = acwr.set_index("group")
    assert acwr.loc["staged", "unexposed_person_weeks"] == pytest.approx(9 / 7)
    assert acwr.loc["hsr", "unexposed_person_weeks"] == 0
    assert acwr["rate_ratio"].isna().all()
    summary = pd.read_csv(out / "time_to_stage_summary.csv")
    assert list(summary.columns) == contract(
        "stage, group, n, events, median_days, median_ci_low, median_ci_high, reached_by_week_12"
    ) + ["reached_by_week_12_ci_low", "reached_by_week_12_ci_high"]


def test_without_by_group_is_all():
    with pytest.warns(UserWarning):
        cohort = small_cohort()
    for name in ("time_to_stage_summary.csv", "relapse_rates.csv", "stage_occupancy.csv"):
        table = OUTPUT_FILES[name](cohort, None, AnalysisConfig())
        assert set(table["group"]) == {"all"}, name


def test_write_metrics_holds_one_table_at_a_time_and_replaces_all_or_none(tmp_path, monkeypatch):
    """Each table is written (as a hidden temporary file) before the next one is computed, so
    that only one output table is in memory at a time; a failure while computing a later
    table replaces no file and leaves no temporary file behind."""
    import rehabstats.metrics.outputs as outputs

    cohort = small_cohort()
    out = tmp_path / "out"
    seen: list[tuple[str, int]] = []

    def computed(name, frame):
        # temporary files already in the folder when this table is handed over
        seen.append((name, len([p for p in out.iterdir() if p.name.endswith(".tmp")])))

    written = outputs.write_metrics(cohort, out, model=False, on_computed=computed)
    names = sorted(p.name for p in written)
    assert [n for n, _ in seen] == names  # computed in the order the files are written
    # the k-th table is computed while the k-1 tables before it are on disk already
    assert [k for _, k in seen] == list(range(len(names)))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(c, by, cfg):
        raise RuntimeError("stage occupancy failed")

    monkeypatch.setitem(outputs.OUTPUT_FILES, "stage_occupancy.csv", broken)
    with pytest.raises(RuntimeError, match="stage occupancy failed"):
        outputs.write_metrics(cohort, out, model=False, config=AnalysisConfig(flare_delta=3))
    # tables before stage_occupancy were computed and written to temporary files: all gone,
    # and the files of the first run are untouched
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
