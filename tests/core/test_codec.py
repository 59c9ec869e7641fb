"""The codec: what training encodes is what the service decodes, and bad input is named precisely."""

import math

import numpy as np
import pytest

from service.core.codec import Batch, Codec, InputError

CLASS = {
    "task": "echo-lag",
    "input": {"dtype": "int", "low": 0, "high": 99, "min_length": 2, "max_length": 1000},
    "encoder": {"type": "index", "low": 0, "classes": 100},
    "decoder": {"type": "class", "low": 0, "classes": 100, "positions": "all", "skip": 1},
}
LAST = {**CLASS, "task": "last-value", "decoder": {**CLASS["decoder"], "positions": "last", "skip": 0}}
ARITH = {
    "task": "arith-next",
    "input": {"dtype": "int", "low": -(10**9), "high": 10**9, "min_length": 7, "max_length": 7},
    "encoder": {"type": "relative"},
    "decoder": {"type": "relative", "positions": "last", "round": True},
}
SIGNED = {**ARITH, "encoder": {"type": "relative", "basis": "value+step", "signed": True}}
RAMP = {
    "task": "ramp",
    "input": {"dtype": "float", "low": -1e6, "high": 1e6, "min_length": 3, "max_length": 50},
    "encoder": {"type": "relative", "basis": "step"},
    "decoder": {"type": "relative", "positions": "last"},
}
WRONG = {
    **ARITH,
    "encoder": {"type": "robust-step"},
    "decoder": {"type": "wrong-position", "positions": "last", "classes": 7},
}


def perfect_output(codec, batch, target, width):
    """The model output that decodes to `target` exactly: one-hot logits or the encoded number."""
    feed, ctx = codec.encode(batch)
    encoded = codec.encode_target(target, ctx)
    out = np.zeros((len(batch.x), batch.x.shape[1], width), dtype=np.float32)
    rows = np.arange(len(out))
    if width > 1:
        out[rows, batch.lengths - 1, encoded] = 10.0
    else:
        out[rows, batch.lengths - 1, 0] = encoded
    return out, ctx


@pytest.mark.parametrize(
    "spec,seqs,target,width",
    [
        (LAST, [[3, 9, 1], [7, 2]], [1, 2], 100),
        (
            ARITH,
            [[10, 20, 30, 40, 50, 60, 70], [5, 5, 5, 5, 5, 5, 5], [-3000, -4000, -5000, -6000, -7000, -8000, -9000]],
            [80, 5, -10000],
            1,
        ),
        (
            SIGNED,
            [[10, 20, 30, 40, 50, 60, 70], [5, 5, 5, 5, 5, 5, 5], [-3000, -4000, -5000, -6000, -7000, -8000, -9000]],
            [80, 5, -10000],
            1,
        ),
        (
            WRONG,
            [
                [10, 20, 30, 40, 50, 60, 70],
                [5, 5, 5, 5, 5, 5, 5],
                [10, 20, 30, -40, 50, 60, 70],
                [-(10**9), 0, 1, 2, 3, 4, 5],
                [0, 1, 2, 3, 4, 999, 6],
            ],
            [80, 5, 80, 6, 7],
            7,
        ),
        (RAMP, [[0.0, 0.05, 0.1], [1.0, 0.8, 0.6, 0.4], [3.0, 3.0, 3.0]], [0.15, 0.2, 3.0], 1),
    ],
)
def test_target_round_trip(spec, seqs, target, width):
    codec = Codec(spec)
    batch = Batch.of(codec.check(seqs))
    out, ctx = perfect_output(codec, batch, np.array(target), width)
    assert np.allclose(codec.next_values(out, batch, ctx), target)


def test_echo_positions_and_padding():
    codec = Codec(CLASS)
    seqs = codec.check([[4, 5, 6, 7], [8, 9]])
    batch = Batch.of(seqs)
    assert batch.x.shape == (2, 4) and list(batch.lengths) == [4, 2]
    feed, ctx = codec.encode(batch)
    logits = np.eye(100, dtype=np.float32)[feed]  # a "model" that answers x_t at step t
    assert codec.decode(logits, batch, ctx) == [[5, 6, 7], [9]]


def test_relative_encoding_is_offset_and_scale_free():
    codec = Codec(ARITH)
    a = codec.encode(Batch.of(codec.check([[1, 2, 3, 4, 5, 6, 7]])))[0]
    b = codec.encode(Batch.of(codec.check([[-500, -300, -100, 100, 300, 500, 700]])))[0]
    assert np.array_equal(a, b)
    assert np.abs(a).max() == 1.0


def test_value_and_step_features_share_the_value_unit():
    codec = Codec({**ARITH, "encoder": {"type": "relative", "basis": "value+step"}})
    feed, (anchor, unit) = codec.encode(Batch.of(codec.check([[10, 20, 30, 45, 50, 60, 70], [3, 3, 3, 3, 3, 3, 3]])))
    assert feed.shape == (2, 7, 2) and unit.tolist() == [60.0, 0.0] and anchor.tolist() == [70.0, 3.0]
    assert np.allclose(feed[0, :, 0] * 60, [-60, -50, -40, -25, -20, -10, 0])
    assert np.allclose(feed[0, :, 1] * 60, [0, 10, 10, 15, 5, 10, 10])  # the wrong 45 shows as two odd steps
    assert not feed[1].any()


def test_signed_unit_makes_rising_and_falling_windows_alike():
    codec = Codec(SIGNED)
    rows = [[10, 20, 30, 45, 50, 60, 70], [130, 120, 110, 95, 90, 80, 70], [3, 3, 3, 3, 3, 3, 3]]
    feed, (anchor, unit) = codec.encode(Batch.of(codec.check(rows)))
    assert unit.tolist() == [
        60.0,
        -60.0,
        0.0,
    ]  # the farthest value reads -1 whichever side it lies on; a constant answers itself
    assert np.array_equal(feed[0], feed[1]) and feed[0, 0, 0] == -1.0
    assert np.allclose(feed[0, :, 1] * 60, [0, 10, 10, 15, 5, 10, 10]) and not feed[2].any()


def test_rollout_window_slides():
    batch = Batch.of([np.array([1, 2, 3]), np.array([7, 8, 0])[:2]])
    moved = batch.slide(np.array([4, 9]))
    assert moved.x[0].tolist() == [2, 3, 4] and moved.x[1, :2].tolist() == [8, 9]


def test_top_k_probabilities():
    codec = Codec(LAST)
    batch = Batch.of(codec.check([[1, 2]]))
    logits = np.full((1, 2, 100), -5.0, dtype=np.float32)
    logits[0, 1, 42], logits[0, 1, 7] = 5.0, 4.0
    top = codec.decoder.top_k(logits, batch, 3)[0]
    assert [t["value"] for t in top[:2]] == [42, 7]
    assert top[0]["p"] > top[1]["p"] > top[2]["p"] and math.isclose(sum(t["p"] for t in top), 1, abs_tol=0.01)


@pytest.mark.parametrize(
    "seqs,pointer,words",
    [
        ([[1, 2, 140]], "/inputs/0/2", "140 is outside 0..99 for task echo-lag"),
        ([[1, True]], "/inputs/0/1", "got a boolean"),
        ([[1, "2"]], "/inputs/0/1", "got a string"),
        ([[1, None]], "/inputs/0/1", "got null"),
        ([[1, 2.5]], "/inputs/0/1", "expected an integer"),
        ([[1, 10**30]], "/inputs/0/1", "outside 0..99"),
        ([[1]], "/inputs/0", "length 1 is outside 2..1000"),
        ([[1, 2], 5], "/inputs/1", "expected a sequence"),
        ([[1, 2], {"a": 1}], "/inputs/1", "got an object"),
    ],
)
def test_rejections_name_the_place(seqs, pointer, words):
    with pytest.raises(InputError) as err:
        Codec(CLASS).check(seqs)
    assert err.value.problems[0].pointer == pointer
    assert words in err.value.problems[0].message


def test_a_fixed_length_is_named_as_the_one_required():
    """Not "length 2 is outside exactly 7": a fixed length reads as the length the task takes."""
    with pytest.raises(InputError) as err:
        Codec(ARITH).check([[1, 2]])
    assert [(p.pointer, p.message) for p in err.value.problems] == [
        ("/inputs/0", "length 2, but task arith-next takes exactly 7 values")
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_rejected(bad):
    with pytest.raises(InputError, match="finite"):
        Codec(RAMP).check([[0.0, bad, 1.0]])


def test_empty_and_non_list_batches():
    for raw, words in [([], "at least one sequence"), ({"x": 1}, "expected a list"), ("abc", "expected a list")]:
        with pytest.raises(InputError, match=words):
            Codec(CLASS).check(raw)


def test_every_problem_is_reported_up_to_a_limit():
    with pytest.raises(InputError) as err:
        Codec(CLASS).check([[200] * 50])
    assert len(err.value.problems) == 20 and err.value.total == 50
    assert "and 30 more" in str(err.value)


def test_robust_step_features_are_zero_on_a_clean_window_and_point_at_the_wrong_value():
    codec = Codec(WRONG)
    batch = Batch.of(codec.check([[7, 107, 207, 307, 407, 507, 607], [7, 107, 207, 10**9, 407, 507, 607]]))
    feats, _ = codec.encode(batch)
    assert feats.shape == (2, 7, 2) and not feats[0].any()
    off = np.flatnonzero(np.abs(feats[1]).sum(axis=1))
    assert off.tolist() == [3, 4]  # the steps into and out of position 3, and no other
    assert feats[1, 3, 0] == 4.0 and feats[1, 4, 0] == -4.0  # clipped: any outlier reads alike


def test_wrong_position_decoder_reports_the_flagged_position_and_spoils_the_answer_when_it_misses():
    codec = Codec(WRONG)
    batch = Batch.of(codec.check([[10, 20, 30, 400, 50, 60, 70]] * 2))
    _, ctx = codec.encode(batch)
    out = np.zeros((2, 7, 7), dtype=np.float32)
    out[0, -1, 3] = 1.0  # flags position 3: the answer comes from the others
    out[1, -1, 6] = 1.0  # "none": the wrong 400 is averaged in
    assert codec.decoder.extras(out, batch) == {"wrong_position": [3, None]}
    assert codec.next_values(out, batch, ctx).tolist()[0] == 80
    assert codec.next_values(out, batch, ctx).tolist()[1] != 80


def test_ramp_contract_refuses_windows_finer_than_float64_holds():
    codec = Codec({**RAMP, "input": {**RAMP["input"], "min_relative_step": 1e-9}})
    assert len(codec.check([[0.0, 0.0, 0.0], [1e6, 1e6 - 1e-3, 1e6 - 2e-3], [0.0, 1e-9, 2e-9]])) == 3
    with pytest.raises(InputError) as err:
        codec.check([[0.0, 1.0, 2.0], [1e6, 1e6 - 2**-33, 1e6]])
    assert [p.pointer for p in err.value.problems] == ["/inputs/1"]
    assert "float64" in str(err.value)


# --- one check for lists (JSON) and numpy arrays (binary tensors) -----------------------------------------


def problems_of(codec, sequences):
    with pytest.raises(InputError) as err:
        codec.check(sequences)
    return [(p.pointer, p.message) for p in err.value.problems], err.value.total, err.value.stopped


@pytest.mark.parametrize("spec", [LAST, ARITH, RAMP])
def test_a_rectangular_batch_comes_back_as_one_2d_array_from_lists_or_arrays(spec):
    codec = Codec(spec)
    rows = [[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1], [0, 0, 0, 0, 0, 0, 0]]
    dtype = np.int64 if spec["input"]["dtype"] == "int" else np.float64
    from_lists = codec.check(rows)
    assert isinstance(from_lists, np.ndarray) and from_lists.shape == (3, 7) and from_lists.dtype == dtype
    for given in (np.array(rows, dtype=np.int64), np.array(rows, dtype=np.int32)):
        from_array = codec.check(given)
        assert from_array.dtype == dtype and from_array.tolist() == from_lists.tolist()
    if spec is RAMP:  # a number task takes float32 tensors too
        assert codec.check(np.array(rows, dtype=np.float32)).tolist() == from_lists.tolist()
    ragged = codec.check([[1, 2, 3], [4, 5, 6, 7]]) if spec is not ARITH else None
    if ragged is not None:
        assert isinstance(ragged, list) and [r.tolist() for r in ragged] == [[1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize(
    "spec,bad",
    [
        (LAST, [[1, 2, 3], [4, 100, 6], [7, 8, -1]]),  # out of range, two rows
        (LAST, [[1] * 1001, [1, 2], [1]]),  # too long, too short
        (ARITH, [[1, 2, 3, 4, 5, 6, 10**9 + 1]] * 30),  # more problems than are listed: stopped
        (RAMP, [[0.5, 1.5, float("nan")], [1.0, 2.0, float("inf")]]),
    ],
)
def test_an_array_fails_with_the_same_problems_at_the_same_places_as_its_lists(spec, bad):
    codec = Codec(spec)
    as_lists = problems_of(codec, bad)
    if all(len(r) == len(bad[0]) for r in bad):
        dtype = np.int64 if spec["input"]["dtype"] == "int" else np.float64
        assert problems_of(codec, np.array(bad, dtype=dtype)) == as_lists
    assert as_lists[0]  # located problems, not a summary


def test_an_array_of_the_wrong_kind_is_walked_value_by_value():
    codec = Codec(LAST)
    problems, total, _ = problems_of(codec, np.array([[1.0, 2.5, 3.0]]))
    assert problems[0][0] == "/inputs/0/0" and "expected an integer" in problems[0][1] and total == 3
    assert problems_of(codec, np.zeros((0, 3), dtype=np.int64))[0] == [
        ("/inputs", "expected at least one sequence, got an empty list")
    ]
    assert "expected a sequence" in problems_of(codec, np.array([1, 2, 3]))[0][0][1]
