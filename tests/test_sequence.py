"""Tests for perfmesh.mesh.sequence: classifying (boot, seq) as new, backfill or duplicate, and owed ranges."""

from perfmesh.mesh.sequence import BACKFILL, DUPLICATE, NEW, SeqTracker


def test_first_batch_of_a_stream_is_new_and_owes_nothing_before_it():
    """Meeting a stream at seq 41 (we restarted, or first sight) is no gap."""
    t = SeqTracker()
    assert t.observe("b1", 41) == (NEW, None, [])
    assert (t.boot, t.last, t.missing, t.missing_count) == ("b1", 41, [], 0)


def test_stream_starting_at_seq_0_is_new_and_its_next_jump_is_a_gap():
    """seq 0 is a valid first batch (the wire allows it), and a jump from it is a gap."""
    t = SeqTracker()
    assert t.observe("b1", 0) == (NEW, None, [])
    assert t.observe("b1", 2) == (NEW, (1, 1), [])
    assert t.observe("b1", 1) == (BACKFILL, None, [])


def test_consecutive_seqs_are_new_without_gaps():
    """1, 2, 3 are all new; nothing is owed."""
    t = SeqTracker()
    assert [t.observe("b1", s) for s in (1, 2, 3)] == [(NEW, None, [])] * 3
    assert t.last == 3 and t.missing == []


def test_jump_opens_an_owed_range_and_returns_it_once():
    """1 then 5 owes 2..4, returned as the gap to request; the next new seq returns none."""
    t = SeqTracker()
    t.observe("b1", 1)
    assert t.observe("b1", 5) == (NEW, (2, 4), [])
    assert t.observe("b1", 6) == (NEW, None, [])
    assert (t.missing, t.missing_count, t.last) == ([[2, 4]], 3, 6)


def test_owed_seqs_arrive_as_backfill_and_split_their_range():
    """An owed seq in the middle splits its range; the ends shrink it; once arrived it is a duplicate."""
    t = SeqTracker()
    t.observe("b1", 1)
    t.observe("b1", 7)                                  # owes 2..6
    assert t.observe("b1", 4) == (BACKFILL, None, [])
    assert t.missing == [[2, 3], [5, 6]]
    assert t.observe("b1", 2) == (BACKFILL, None, [])
    assert t.observe("b1", 6) == (BACKFILL, None, [])
    assert t.missing == [[3, 3], [5, 5]] and t.missing_count == 2
    assert t.observe("b1", 4) == (DUPLICATE, None, [])
    assert t.observe("b1", 3) == (BACKFILL, None, [])
    assert t.observe("b1", 5) == (BACKFILL, None, [])
    assert t.missing == [] and t.last == 7


def test_repeat_of_the_last_or_an_older_unowed_seq_is_a_duplicate():
    """Anything at or below last that is not owed is a duplicate and changes nothing."""
    t = SeqTracker()
    t.observe("b1", 1)
    t.observe("b1", 2)
    assert t.observe("b1", 2) == (DUPLICATE, None, [])
    assert t.observe("b1", 1) == (DUPLICATE, None, [])
    assert t.observe("b1", 0) == (DUPLICATE, None, [])
    assert (t.last, t.missing) == (2, [])


def test_new_boot_gives_up_the_old_boots_owed_ranges_and_restarts():
    """A new boot id returns what the old boot still owed and starts from its first seq."""
    t = SeqTracker()
    t.observe("b1", 1)
    t.observe("b1", 4)
    t.observe("b1", 8)
    assert t.missing == [[2, 3], [5, 7]]
    assert t.observe("b2", 1) == (NEW, None, [(2, 3), (5, 7)])
    assert (t.boot, t.last, t.missing) == ("b2", 1, [])
    assert t.observe("b2", 3) == (NEW, (2, 2), [])


def test_new_boot_met_mid_stream_owes_nothing_before_its_first_seq():
    """A new boot first seen at seq 10 does not owe 1..9."""
    t = SeqTracker()
    t.observe("b1", 1)
    assert t.observe("b2", 10) == (NEW, None, [])
    assert t.missing == []


def test_owed_ranges_past_max_ranges_give_up_the_oldest():
    """At most max_ranges ranges are owed; the oldest is returned as given up."""
    t = SeqTracker(max_ranges=2)
    t.observe("b1", 1)
    assert t.observe("b1", 3) == (NEW, (2, 2), [])
    assert t.observe("b1", 5) == (NEW, (4, 4), [])
    assert t.observe("b1", 8) == (NEW, (6, 7), [(2, 2)])
    assert t.missing == [[4, 4], [6, 7]]
    assert t.observe("b1", 2) == (DUPLICATE, None, [])


def test_give_up_drops_the_intersection_and_keeps_the_rest():
    """give_up(first, last) removes exactly the owed seqs inside it, splitting ranges it cuts."""
    t = SeqTracker()
    t.resume("b1", 20, [(2, 5), (8, 10), (14, 18)])
    assert t.give_up(4, 15) == [(4, 5), (8, 10), (14, 15)]
    assert t.missing == [[2, 3], [16, 18]]
    assert t.give_up(11, 13) == []
    assert t.give_up(17, 17) == [(17, 17)]
    assert t.missing == [[2, 3], [16, 16], [18, 18]] and t.missing_count == 4
    assert t.give_up(0, 100) == [(2, 3), (16, 16), (18, 18)]
    assert t.missing == []


def test_resume_continues_a_persisted_stream():
    """After resume(boot, last, missing), owed seqs are backfill, newer ones new, a jump a gap."""
    t = SeqTracker()
    t.resume("b1", 10, [(4, 5)])
    assert (t.boot, t.last, t.missing) == ("b1", 10, [[4, 5]])
    assert t.observe("b1", 5) == (BACKFILL, None, [])
    assert t.observe("b1", 9) == (DUPLICATE, None, [])
    assert t.observe("b1", 13) == (NEW, (11, 12), [])
    t.resume("b2", 3)
    assert (t.boot, t.last, t.missing) == ("b2", 3, [])


def test_missing_lists_are_copies_not_shared():
    """resume() copies the ranges it is given; the caller's list is not mutated by later takes."""
    given = [(4, 6)]
    t = SeqTracker()
    t.resume("b1", 10, given)
    t.observe("b1", 5)
    assert given == [(4, 6)] and t.missing == [[4, 4], [6, 6]]
