"""The continual benchmark's arithmetic: label-kept per task, and the held-out seeds' goals."""

from __future__ import annotations

from simulations.bench.continual import PROTOTYPE, judge_heldout, kept_per_task


def test_label_kept_is_read_in_each_tasks_first_round():
    rounds = [{}, {}, {"continual-aug-label-kept": 0.97}, {}, {"continual-aug-label-kept": 0.99},
              {"continual-aug-label-kept": 0.5}]
    # task 0 fits nothing; tasks 1 and 2 fitted in their first round; a later report is ignored
    assert kept_per_task(rounds, rounds_per_task=2) == [0.97, 0.99]
    assert kept_per_task([{}, {}], rounds_per_task=1) == []


def _run(aia, forgetting, final=0.6, student=None, kept=(0.96,)):
    return {"teacher": {"average_incremental_accuracy": aia, "forgetting": forgetting,
                        "final_accuracy": final},
            "student": {"final_accuracy": student},
            "augment_label_kept_per_task": list(kept)}


def test_held_out_goals_are_counted_per_seed():
    done = {(1, "finetune"): _run(0.44, 0.98), (1, "pass"): _run(0.72, 0.20),
            (1, "adaptive"): _run(0.75, 0.30, final=0.60, student=0.58),
            (2, "finetune"): _run(0.44, 0.50), (2, "pass"): _run(0.78, 0.20),
            (2, "adaptive"): _run(0.76, 0.26, final=0.60, student=0.565, kept=(0.97, 0.95))}
    judged = judge_heldout(done, (1, 2))
    assert judged["seeds_meeting"] == {"aia_above_pass": 1, "forgetting_half_of_finetune": 1,
                                       "student_within_3_points": 1}
    assert judged["per_seed"]["2"]["augment_label_kept_min"] == 0.95
    # with the prototype centre run beside them, its goals are counted too
    done |= {(1, PROTOTYPE): _run(0.70, 0.35, final=0.6, student=0.5),
             (2, PROTOTYPE): _run(0.79, 0.3, final=0.6, student=0.59)}
    judged = judge_heldout(done, (1, 2))
    assert judged["seeds_meeting"]["prototype_aia_above_pass"] == 1
    assert judged["seeds_meeting"]["prototype_student_within_3_points"] == 1
    assert judged["per_seed"]["1"]["prototype_aia"] == 0.70


def test_a_held_out_run_in_process_reports_its_summary_and_label_kept_rates():
    from simulations.bench.continual import in_process, workload

    keys = {**workload(True, "adaptive").to_flat(), "seed": 11,
            "continual.max-samples-per-class": 20, "continual.augment-steps": 40}
    result = in_process(keys)
    assert 0 < result["teacher"]["average_incremental_accuracy"] <= 1
    assert result["student"]["final_accuracy"] is not None
    kept = result["augment_label_kept_per_task"]
    assert len(kept) == 4 and all(0 <= k <= 1 for k in kept)  # tasks 1-4 fitted vectors
