"""The native dashboard's data: a tree of plugins > files > tests with their last outcomes.

Rows are only ever appended (a full reset happens on an explicit reload), so each node
keeps its row number and a streamed result is an O(depth) update of the nodes. The views
hear about it once per frame: ``dataChanged`` is coalesced per parent every
``FLUSH_MS``, because a sorted proxy re-sorts on each signal (0.6 ms a row; a 200-test
burst queued ~170 ms of work behind it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from plexichat_desktop.testing.models import BAD_OUTCOMES, CollectedTest
from plexichat_desktop.testing.results import NEUTRAL_OUTCOMES, SUCCESS_OUTCOMES, is_flaky
from plexichat_desktop.testing.summary import CARD_OUTCOMES, OTHER_OUTCOMES, outcome_word

ModelIndex = QModelIndex | QPersistentModelIndex

OUTCOME_COLOURS = {
    "passed": "#1f9d55", "xfailed": "#5b8a72", "xpassed": "#c77c02", "failed": "#d64545",
    "error": "#b83280", "timed_out": "#c05621", "crashed": "#742a2a", "skipped": "#8a94a6",
    "not_run": "#b8c0cc", "running": "#3563e9", "queued": "#9bb0f0", None: "#d5dae3",
}
OUTCOME_LABELS = {"timed_out": "timed out", "not_run": "not run", None: "never run"}
BAD = frozenset(str(o) for o in BAD_OUTCOMES)

KIND_ROLE = Qt.ItemDataRole.UserRole + 1      # "plugin", "file" or "test"
KEY_ROLE = Qt.ItemDataRole.UserRole + 2       # plugin id, file path or node id
PLUGIN_ROLE = Qt.ItemDataRole.UserRole + 3    # the plugin id of any row
OUTCOME_ROLE = Qt.ItemDataRole.UserRole + 4   # a test's outcome (or state) as a string
SORT_ROLE = Qt.ItemDataRole.UserRole + 5

COLUMNS = ("Test", "Outcome", "Duration", "Flaky")
_NO_PARENT = QModelIndex()  # Qt's 'no parent' default, shared
FLUSH_MS = 16                # one frame at 60 Hz

_icons: dict[str | None, QIcon] = {}


def outcome_icon(outcome: str | None) -> QIcon:
    """A coloured dot per outcome; a ring for tests that never ran."""
    if outcome not in _icons:
        pixmap = QPixmap(32, 32)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(OUTCOME_COLOURS.get(outcome, OUTCOME_COLOURS[None]))
        if outcome is None:
            painter.setPen(colour)
            painter.drawEllipse(8, 8, 16, 16)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawEllipse(6, 6, 20, 20)
        painter.end()
        _icons[outcome] = QIcon(pixmap)
    return _icons[outcome]


def outcome_label(outcome: str | None) -> str:
    return OUTCOME_LABELS.get(outcome, outcome or "")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


@dataclass(eq=False)
class Node:
    """One row. Plugin and file rows aggregate the outcomes of the tests below them."""

    kind: str
    key: str
    label: str
    plugin_id: str
    parent: Node | None = None
    row: int = 0
    children: list[Node] = field(default_factory=list)
    by_key: dict[str, Node] = field(default_factory=dict)
    outcome: str | None = None       # tests: last final outcome
    state: str | None = None         # tests: "running" / "queued" while a run has them
    duration: float | None = None
    flaky: bool = False
    message: str = ""
    counts: Counter[str] = field(default_factory=Counter)   # aggregates: outcomes below
    total_duration: float = 0.0
    error: str = ""                  # plugins and files: why the last run could not run them

    def shown_outcome(self) -> str | None:
        return self.state or self.outcome


def is_file_result(nodeid: str) -> bool:
    """A result without a test part ("tests/test_x.py"): pytest's collection error of a
    whole file (or conftest), which belongs to the file's row, not to a test row."""
    return "::" not in nodeid


def _split(nodeid: str) -> tuple[str, str]:
    """('tests/test_a.py', 'TestX::test_b[1]') from a pytest node id."""
    file, sep, rest = nodeid.partition("::")
    return file, rest if sep else nodeid


class TestTreeModel(QAbstractItemModel):
    """Plugins > test files > tests, with outcome, duration and flaky mark per test."""

    __test__ = False

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.root = Node("root", "", "", "")
        self._dirty: dict[int, tuple[Node, set[int]]] = {}
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush)

    # -- building -------------------------------------------------------------------------
    def reset(self, plugins: list[tuple[str, str]], collected: list[CollectedTest],
              summaries: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Rebuild from scratch: (plugin id, name) pairs, collected tests, and per plugin
        the test summaries of ``ResultStore.test_summaries`` (last result, flaky mark)."""
        self.beginResetModel()
        self._dirty.clear()
        self.root = Node("root", "", "", "")
        for plugin_id, name in plugins:
            self._add(self.root, Node("plugin", plugin_id, name, plugin_id))
        for item in collected:
            self._test_node(item.plugin_id, item.nodeid, create=True, notify=False)
        for plugin_id, results in summaries.items():
            self._apply(plugin_id, results, notify=False)
        self.endResetModel()

    def apply_summaries(self, plugin_id: str, summaries: dict[str, dict[str, Any]]) -> None:
        """Every test of a plugin as the store now says (after a run ended): last outcome,
        duration, message and the flaky mark, the same rule the web dashboard applies."""
        self._apply(plugin_id, summaries, notify=True)

    def _apply(self, plugin_id: str, summaries: dict[str, dict[str, Any]], notify: bool
               ) -> None:
        for nodeid, summary in summaries.items():
            if is_file_result(nodeid):
                continue  # collection errors: marked from the plugin's last run only
            node = self._test_node(plugin_id, nodeid, create=True, notify=notify)
            if node is None:
                continue
            flaky = is_flaky(summary)
            if (notify and node.outcome == summary["outcome"] and node.flaky == flaky
                    and node.duration == summary["duration"]):
                continue
            self._set_result(node, str(summary["outcome"]), float(summary["duration"]),
                             flaky=flaky, message=summary.get("message") or "")
            if notify:
                self._changed(node, upwards=True)

    def merge_collected(self, plugin_id: str, items: list[CollectedTest]) -> None:
        """Add newly discovered tests without disturbing the rows already shown."""
        for item in items:
            self._test_node(plugin_id, item.nodeid, create=True)

    def ensure_plugin(self, plugin_id: str, name: str | None = None) -> Node:
        node = self.root.by_key.get(plugin_id)
        if node is None:
            node = Node("plugin", plugin_id, name or plugin_id, plugin_id)
            self._insert(self.root, node)
        return node

    def _add(self, parent: Node, node: Node) -> None:
        node.parent, node.row = parent, len(parent.children)
        parent.children.append(node)
        parent.by_key[node.key] = node

    def _insert(self, parent: Node, node: Node) -> None:
        row = len(parent.children)
        self.beginInsertRows(self._index_of(parent), row, row)
        self._add(parent, node)
        self.endInsertRows()

    def _test_node(self, plugin_id: str, nodeid: str, create: bool,
                   notify: bool = True) -> Node | None:
        plugin = self.root.by_key.get(plugin_id)
        if plugin is None:
            if not create:
                return None
            plugin = Node("plugin", plugin_id, plugin_id, plugin_id)
            (self._insert if notify else self._add)(self.root, plugin)
        file, name = _split(nodeid)
        file_node = plugin.by_key.get(file)
        if file_node is None:
            if not create:
                return None
            file_node = Node("file", file, file, plugin_id)
            (self._insert if notify else self._add)(plugin, file_node)
        test = file_node.by_key.get(nodeid)
        if test is None and create:
            test = Node("test", nodeid, name, plugin_id)
            (self._insert if notify else self._add)(file_node, test)
            self._bump(test, None, None, 0.0)
        return test

    # -- live updates ---------------------------------------------------------------------
    def test_started(self, plugin_id: str, nodeid: str) -> None:
        node = self._test_node(plugin_id, nodeid, create=True)
        if node is not None:
            node.state = "running"
            self._changed(node, upwards=True)  # the file and plugin dots turn "running"

    def test_finished(self, plugin_id: str, nodeid: str, outcome: str, duration: float,
                      message: str = "", flaky: bool = False) -> None:
        if is_file_result(nodeid):
            # A file that did not collect; a module that skipped itself is no error (its
            # tests never were rows, and the run's counts say "skipped").
            if outcome == "error":
                self.set_errors(plugin_id, None, {nodeid: message or outcome}, clear=False)
            return
        node = self._test_node(plugin_id, nodeid, create=True)
        if node is not None:
            node.state = None
            self._set_result(node, outcome, duration, flaky, message)
            self._changed(node, upwards=True)

    def set_errors(self, plugin_id: str, run_error: str | None, files: dict[str, str],
                   clear: bool = True) -> None:
        """Mark why a run could not run tests: ``files`` maps a file (or conftest) to its
        collection error, ``run_error`` is the run's own error, shown on the plugin row."""
        plugin = self.ensure_plugin(plugin_id)
        if clear:
            self.clear_errors(plugin_id)
        if run_error is not None or files:
            plugin.error = run_error or next(iter(files.values()))
            self._changed(plugin, upwards=False)
        for file, message in files.items():
            file_node = plugin.by_key.get(file)
            if file_node is None:
                file_node = Node("file", file, file, plugin_id)
                self._insert(plugin, file_node)
            file_node.error = message or "collection error"
            self._changed(file_node, upwards=True)

    def clear_errors(self, plugin_id: str) -> None:
        plugin = self.root.by_key.get(plugin_id)
        if plugin is None:
            return
        for node in (plugin, *plugin.children):
            if node.error:
                node.error = ""
                self._changed(node, upwards=node is not plugin)

    def errors(self, plugin_id: str) -> dict[str, str]:
        """The rows marked with an error: key (plugin id or file) -> message."""
        plugin = self.root.by_key.get(plugin_id)
        if plugin is None:
            return {}
        return {n.key: n.error for n in (plugin, *plugin.children) if n.error}

    def clear_states(self, plugin_id: str) -> None:
        """A run ended: whatever it left marked as running is not running any more."""
        plugin = self.root.by_key.get(plugin_id)
        for file_node in plugin.children if plugin else []:
            for test in file_node.children:
                if test.state is not None:
                    test.state = None
                    self._changed(test, upwards=True)

    def _set_result(self, node: Node, outcome: str, duration: float, flaky: bool,
                    message: str) -> None:
        old_outcome, old_duration = node.outcome, node.duration or 0.0
        node.outcome, node.duration, node.flaky, node.message = (outcome, duration, flaky,
                                                                  message)
        self._bump(node, old_outcome, outcome, duration - old_duration)

    def _bump(self, node: Node, old: str | None, new: str | None, duration_delta: float
              ) -> None:
        parent = node.parent
        first = old is None and new is None
        while parent is not None and parent is not self.root:
            if not first:
                parent.counts[old or "never"] -= 1
            parent.counts[new or "never"] += 1
            parent.total_duration += duration_delta
            parent = parent.parent

    def _changed(self, node: Node, upwards: bool) -> None:
        current: Node | None = node
        while current is not None and current is not self.root:
            parent = current.parent
            assert parent is not None
            self._dirty.setdefault(id(parent), (parent, set()))[1].add(current.row)
            current = parent if upwards else None
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush(self) -> None:
        """Tell the views about every row changed since the last flush: one signal per
        parent, spanning its changed rows."""
        dirty, self._dirty = self._dirty, {}
        last = len(COLUMNS) - 1
        for parent, rows in dirty.values():
            first_row, last_row = min(rows), max(rows)
            self.dataChanged.emit(
                self.createIndex(first_row, 0, parent.children[first_row]),
                self.createIndex(last_row, last, parent.children[last_row]))

    # -- queries ----------------------------------------------------------------------------
    def node(self, index: ModelIndex) -> Node | None:
        return index.internalPointer() if index.isValid() else None

    def find(self, plugin_id: str, nodeid: str | None = None) -> Node | None:
        if nodeid is None:
            return self.root.by_key.get(plugin_id)
        return self._test_node(plugin_id, nodeid, create=False)

    def index_for(self, node: Node, column: int = 0) -> QModelIndex:
        return self.createIndex(node.row, column, node)

    def tests(self, plugin_id: str | None = None) -> list[Node]:
        plugins = [self.root.by_key[plugin_id]] if plugin_id in self.root.by_key \
            else [] if plugin_id else self.root.children
        return [t for p in plugins for f in p.children for t in f.children]

    def failed(self, plugin_id: str | None = None) -> list[Node]:
        return [t for t in self.tests(plugin_id) if t.outcome in BAD]

    def _index_of(self, node: Node) -> QModelIndex:
        return QModelIndex() if node is self.root else self.createIndex(node.row, 0, node)

    # -- QAbstractItemModel -------------------------------------------------------------------
    def index(self, row: int, column: int, parent: ModelIndex = _NO_PARENT) -> QModelIndex:
        owner = self.node(parent) or self.root
        if 0 <= row < len(owner.children) and 0 <= column < len(COLUMNS):
            return self.createIndex(row, column, owner.children[row])
        return QModelIndex()

    def parent(self, index: ModelIndex = _NO_PARENT) -> QModelIndex:  # type: ignore[override]
        node = self.node(index)
        if node is None or node.parent is None or node.parent is self.root:
            return QModelIndex()
        return self.createIndex(node.parent.row, 0, node.parent)

    def rowCount(self, parent: ModelIndex = _NO_PARENT) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len((self.node(parent) or self.root).children)

    def columnCount(self, parent: ModelIndex = _NO_PARENT) -> int:
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self.node(index)
        if node is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(node, column)
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return outcome_icon(self._worst(node))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(node)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == KIND_ROLE:
            return node.kind
        if role == KEY_ROLE:
            return node.key
        if role == PLUGIN_ROLE:
            return node.plugin_id
        if role == OUTCOME_ROLE:
            return node.shown_outcome() or "never" if node.kind == "test" else ""
        if role == SORT_ROLE:
            return self._sort_key(node, column)
        return None

    def _display(self, node: Node, column: int) -> str:
        if column == 0:
            return node.label
        if node.kind == "test":
            return (outcome_label(node.shown_outcome()) if column == 1
                    else format_duration(node.duration) if column == 2
                    else "flaky" if column == 3 and node.flaky else "")
        if column == 1:
            summary = self._summary(node)
            if node.error:
                return "error: could not run" + (f" · {summary}" if summary else "")
            return summary
        if column == 2:
            return format_duration(node.total_duration) if node.total_duration else ""
        return ""

    @staticmethod
    def _summary(node: Node) -> str:
        # The cards' words (and the web dashboard's), then the rarer outcomes.
        parts = []
        for card, outcome in CARD_OUTCOMES.items():
            if node.counts[outcome]:
                parts.append(f"{node.counts[outcome]} {card}")
        for outcome in OTHER_OUTCOMES:
            if node.counts[outcome]:
                parts.append(f"{node.counts[outcome]} {outcome_word(outcome)}")
        if node.counts["never"]:
            parts.append(f"{node.counts['never']} not run yet")
        return " · ".join(parts)

    def _worst(self, node: Node) -> str | None:
        if node.kind == "test":
            return node.shown_outcome()
        if self._any_state(node):
            return "running"
        if node.error or any(child.error for child in node.children if node.kind == "plugin"):
            return "error"
        for outcome in ("crashed", "timed_out", "error", "failed", "xpassed", "passed",
                        "xfailed", "skipped", "not_run"):
            if node.counts[outcome] > 0:
                return outcome
        return None

    def _any_state(self, node: Node) -> bool:
        tests = node.children if node.kind == "file" else [
            t for f in node.children for t in f.children]
        return any(t.state for t in tests)

    def _tooltip(self, node: Node) -> str:
        if node.kind == "test":
            text = f"{node.key}\n{outcome_label(node.shown_outcome())}"
            if node.message:
                text += f": {node.message[:300]}"
            return text
        text = f"{node.key}\n{self._summary(node)}"
        if node.error:
            text += f"\nError: {node.error[:300]}"
        return text

    def _sort_key(self, node: Node, column: int) -> Any:
        if column == 2:
            return node.duration if node.kind == "test" else node.total_duration
        if column == 1:
            order = ["crashed", "timed_out", "error", "failed", "running", "xpassed",
                     "passed", "xfailed", "skipped", "not_run", None]
            outcome = self._worst(node)
            return order.index(outcome) if outcome in order else len(order)
        if column == 3:
            return int(node.flaky)
        return node.label.lower()


class TestFilterProxy(QSortFilterProxyModel):
    """Text and outcome filters; a parent stays visible while any child matches."""

    __test__ = False

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.text = ""
        self.outcomes: frozenset[str] = frozenset()
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self.text = text.strip().lower()
        self.endFilterChange()

    def set_outcomes(self, outcomes: set[str] | frozenset[str]) -> None:
        self.beginFilterChange()
        self.outcomes = frozenset(outcomes)
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        kind = model.data(index, KIND_ROLE)
        if self.outcomes:
            if kind != "test":
                return False  # shown only through a matching test below it
            outcome = model.data(index, OUTCOME_ROLE)
            if outcome not in self.outcomes:
                return False
        if self.text:
            key = str(model.data(index, KEY_ROLE)).lower()
            label = str(model.data(index, Qt.ItemDataRole.DisplayRole)).lower()
            if self.text not in key and self.text not in label:
                return False
        return True


def outcome_filter_groups() -> dict[str, frozenset[str]]:
    """The outcome filter buttons and the outcomes each one shows."""
    return {
        "Passed": frozenset(str(o) for o in SUCCESS_OUTCOMES),
        "Failed": BAD,
        "Skipped": frozenset(str(o) for o in NEUTRAL_OUTCOMES),
        "Running": frozenset({"running"}),
        "Not run yet": frozenset({"never"}),
    }
