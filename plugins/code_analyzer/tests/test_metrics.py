"""Known answers for the metrics of one file, and bad input turned into findings."""

from __future__ import annotations

from code_analyzer.metrics import analyze, content_key


def test_python_function_with_four_branches_has_complexity_5(four_branches: str) -> None:
    m = analyze("grade.py", four_branches.encode(), "python")
    assert [(f["name"], f["complexity"], f["line"], f["end_line"]) for f in m["functions"]
            ] == [("grade", 5, 1, 11)]
    assert m["loc"] == 11 and m["blank"] == 0 and m["sloc"] == 10  # the docstring is no code
    assert m["comments"] == 1  # the docstring counts as a (multi-line) comment
    assert 0 < m["mi"] <= 100
    assert m["halstead"]["volume"] > 0 and m["halstead"]["vocabulary"] > 0
    assert m["max_complexity"] == 5 and m["findings"] == []


def test_methods_are_named_with_their_class() -> None:
    code = "class K:\n    def m(self, x):\n        return 1 if x else 2\n"
    m = analyze("k.py", code.encode(), "python")
    assert [(f["name"], f["complexity"]) for f in m["functions"]] == [("K.m", 2)]


def test_lizard_measures_javascript() -> None:
    code = ("// a comment\n"
            "function pick(a, b) {\n"
            "  if (a && b) { return 1; }\n"
            "  for (let i = 0; i < 3; i++) { a += i; }\n"
            "  return a > 2 ? 3 : 4;\n"
            "}\n\n")
    m = analyze("pick.js", code.encode(), "javascript")
    [fn] = m["functions"]
    # if, &&, for, ?: -> 1 + 4
    assert (fn["name"], fn["complexity"], fn["params"], fn["line"]) == ("pick", 5, 2, 2)
    assert m["comments"] == 1 and m["blank"] == 1 and m["sloc"] == 5
    assert m["mi"] is None  # MI and Halstead are Python-only


def test_go_and_rust_are_read_by_lizard() -> None:
    go = "package main\nfunc f(x int) int {\n\tif x > 1 {\n\t\treturn 1\n\t}\n\treturn 0\n}\n"
    rust = "fn f(x: i32) -> i32 {\n    if x > 1 { 1 } else { 0 }\n}\n"
    assert analyze("f.go", go.encode(), "go")["functions"][0]["complexity"] == 2
    assert analyze("f.rs", rust.encode(), "rust")["functions"][0]["complexity"] == 2


def test_a_syntax_error_is_a_finding_not_a_crash() -> None:
    m = analyze("broken.py", b"x = 1\n\ndef broken(:\n    pass\n", "python")
    [f] = m["findings"]
    assert (f["rule"], f["severity"], f["line"]) == ("CA001", "high", 3)
    assert f["message"].startswith("syntax error")
    assert m["loc"] == 4 and m["sloc"] == 3 and m["functions"] == [] and m["mi"] is None


def test_non_utf8_is_read_as_latin1_with_a_finding() -> None:
    m = analyze("legacy.py", b"# caf\xe9\nx = 1\n", "python")
    [f] = m["findings"]
    assert f["rule"] == "CA002" and "0xe9" in f["message"] and f["line"] == 1
    assert m["sloc"] == 1


def test_binary_content_is_flagged() -> None:
    m = analyze("blob.py", b"\x00\x01\x02def f(): pass", "python")
    assert m["binary"] is True and m["functions"] == []


def test_cache_key_follows_content_and_language() -> None:
    assert content_key(b"a", "python") == content_key(b"a", "python")
    assert content_key(b"a", "python") != content_key(b"b", "python")
    assert content_key(b"a", "python") != content_key(b"a", "go")
