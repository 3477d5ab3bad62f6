"""Scenario files: the ``[digits]`` table applies only when the data is digits, under overrides."""

from simulations.scenarios import load_scenario


def test_digits_table_applies_when_the_data_is_digits():
    scenario = load_scenario("default", ["dataset=digits"])
    assert scenario.config.local_epochs == 5
    assert any("local-epochs=5" in note for note in scenario.notes)


def test_digits_table_ignored_for_other_data():
    scenario = load_scenario("default", ["dataset=fashion-mnist"])
    assert scenario.config.local_epochs == 1 and scenario.notes == ()


def test_an_override_wins_over_the_digits_table():
    scenario = load_scenario("default", ["dataset=digits", "local-epochs=2"])
    assert scenario.config.local_epochs == 2 and scenario.notes == ()
