"""perfmesh.model.serieskey: the one series-key encoder and parser, used by every reader."""

from __future__ import annotations

from hypothesis import given, strategies as st

from perfmesh.model.serieskey import parse_series_key, series_key

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:]{0,20}", fullmatch=True)
LABEL_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
NASTY = st.text(alphabet=st.sampled_from(list(',={}"\\ ab1é')), max_size=12)
VALUES = st.one_of(NASTY, st.text(max_size=12))


def test_bare_name_and_sorted_labels():
    """A bare name is its own key; labels are sorted by name inside braces."""
    assert series_key("load_1m") == "load_1m"
    assert series_key("load_1m", {}) == "load_1m"
    assert series_key("disk", {"mode": "r", "device": "sda"}) == "disk{device=sda,mode=r}"


def test_plain_values_are_written_unescaped():
    """Values without special characters are written as they are (stored keys keep reading back)."""
    assert series_key("cpu_percent", {"cpu": "3"}) == "cpu_percent{cpu=3}"


def test_special_characters_in_values_are_escaped():
    """Each of , = { } " and backslash in a label value gets a backslash."""
    assert series_key("x", {"a": 'p,q=r{}"\\'}) == 'x{a=p\\,q\\=r\\{\\}\\"\\\\}'


def test_parser_reads_plain_keys():
    """name{k=v,...} splits into name and labels; a plain name has none."""
    assert parse_series_key("cpu_percent{cpu=3}") == ("cpu_percent", {"cpu": "3"})
    assert parse_series_key("x{a=1,b=two}") == ("x", {"a": "1", "b": "two"})
    assert parse_series_key("load_1m") == ("load_1m", {})
    assert parse_series_key("disk{device=sda}") == ("disk", {"device": "sda"})


def test_parser_keeps_unescaped_commas_written_by_older_code_in_the_value():
    """A comma not followed by `label=` stays in the value; x{} has no labels; no `}` is a bare name."""
    assert parse_series_key("x{a=1,b=p,q}") == ("x", {"a": "1", "b": "p,q"})
    assert parse_series_key("x{}") == ("x", {})
    assert parse_series_key("odd{a=1") == ("odd{a=1", {})


def test_an_escaped_closing_brace_does_not_close_the_key():
    """`x{a=b\\}` ends in an escaped brace: not a labelled key."""
    assert parse_series_key("x{a=b\\}") == ("x{a=b\\}", {})
    assert parse_series_key("x{a=b\\\\}") == ("x", {"a": "b\\"})


def test_names_with_colons_parse_like_any_other():
    """`app:lat{x=1}` (a recording-rule style name) parses to its name and labels."""
    assert parse_series_key("app:lat{x=1}") == ("app:lat", {"x": "1"})


def test_round_trip_of_awkward_values():
    """Label values holding , = { } " and backslash come back unchanged."""
    labels = {"a": ",", "b": "=", "c": "{", "d": "}", "e": '"', "f": "\\", "g": "k=v,l=w}", "h": ""}
    assert parse_series_key(series_key("m", labels)) == ("m", labels)


@given(NAMES, st.dictionaries(LABEL_KEYS, VALUES, max_size=4))
def test_round_trip_property(name, labels):
    """parse_series_key inverts series_key for every name and any label values."""
    assert parse_series_key(series_key(name, labels)) == (name, labels)


def test_every_reader_uses_the_one_parser():
    """The dashboard, HTML report, alert rules, alert delivery and exporter share one parser."""
    from perfmesh.rules import alerting
    from perfmesh.views import dashboard, report_html
    from workers import alerts, exporter
    for module in (alerting, dashboard, report_html, alerts, exporter):
        assert module.parse_series_key is parse_series_key, module.__name__


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,10}", fullmatch=True),
       st.dictionaries(LABEL_KEYS, st.text(alphabet=st.sampled_from(list(',={}"\\ab1:/-.')), max_size=8),
                       max_size=3))
def test_the_web_history_check_accepts_escaped_keys(name, labels):
    """perfmesh web's key check lets through every key the encoder writes from safe characters."""
    from workers.web import KEY_RE
    assert KEY_RE.fullmatch(series_key(name, labels))


def test_the_web_history_check_still_refuses_markup():
    """Characters outside the safe set are refused, escaped or not."""
    from workers.web import KEY_RE
    for bad in ("x{a=<b>}", "x{a=\\n}", "x{\\}", "x{a=b} ", "x{a=\\<}"):
        assert not KEY_RE.fullmatch(bad), bad
