// A code editor for plugin pages: CodeMirror 6 (basic setup; Python, JavaScript,
// JSON, SQL, Markdown) with Yjs and y-codemirror.next for collaborative editing.
//
//   import {createEditor} from "/_app/vendor/editor.js";
//   const editor = createEditor(document.getElementById("code"), {
//     doc: "SELECT 1;", language: "sql", onChange: (text) => save(text)});
//   editor.state.doc.toString();   // the CodeMirror EditorView API from then on
//
// Collaborative: pass a Y.Text (and an Awareness for remote cursors); the text then lives
// in the Y.Doc and `doc` is ignored. Carrying updates between peers (a WebSocket, the live
// hub) is the page's business: the Y.Doc's "update" events and Y.applyUpdate.
//
//   import {Y, Awareness, createEditor} from "/_app/vendor/editor.js";
//   const ydoc = new Y.Doc();
//   createEditor(element, {language: "markdown", ytext: ydoc.getText("notes"),
//                          awareness: new Awareness(ydoc)});

import {
  autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap,
} from "@codemirror/autocomplete";
import {defaultKeymap, history, historyKeymap, indentWithTab} from "@codemirror/commands";
import {javascript} from "@codemirror/lang-javascript";
import {json} from "@codemirror/lang-json";
import {markdown} from "@codemirror/lang-markdown";
import {python} from "@codemirror/lang-python";
import {sql} from "@codemirror/lang-sql";
import {
  bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput,
  syntaxHighlighting,
} from "@codemirror/language";
import {lintKeymap} from "@codemirror/lint";
import {highlightSelectionMatches, searchKeymap} from "@codemirror/search";
import {Compartment, EditorState} from "@codemirror/state";
import {
  EditorView, crosshairCursor, drawSelection, dropCursor, highlightActiveLine,
  highlightActiveLineGutter, highlightSpecialChars, keymap, lineNumbers,
  rectangularSelection,
} from "@codemirror/view";
import {oneDark} from "@codemirror/theme-one-dark";
import * as Y from "yjs";
import {Awareness} from "y-protocols/awareness";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import {yCollab, yUndoManagerKeymap} from "y-codemirror.next";

export {Awareness, Compartment, EditorState, EditorView, Y, keymap, oneDark, yCollab};
// The y-websocket wire format, for pages that carry a Y.Doc over a socket themselves
// (the v1 collaboration socket): sync steps and updates, awareness updates, and lib0's
// variable-length integers that frame them.
export {awarenessProtocol, decoding, encoding, syncProtocol};

/** The languages by name; each value makes the CodeMirror extension. */
export const languages = {
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({typescript: true}),
  json: () => json(),
  sql: () => sql(),
  markdown: () => markdown(),
  text: () => [],
};

/**
 * The `codemirror` package's basicSetup, except that the undo history can be left out:
 * a collaborative editor undoes with the Yjs UndoManager (only the user's own changes),
 * and CodeMirror's history would undo the other users' changes as well.
 */
export function basicSetup({undoHistory = true} = {}) {
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightSpecialChars(),
    undoHistory ? history() : [],
    foldGutter(),
    drawSelection(),
    dropCursor(),
    EditorState.allowMultipleSelections.of(true),
    indentOnInput(),
    syntaxHighlighting(defaultHighlightStyle, {fallback: true}),
    bracketMatching(),
    closeBrackets(),
    autocompletion(),
    rectangularSelection(),
    crosshairCursor(),
    highlightActiveLine(),
    highlightSelectionMatches(),
    keymap.of([
      ...closeBracketsKeymap,
      ...defaultKeymap,
      ...searchKeymap,
      ...(undoHistory ? historyKeymap : yUndoManagerKeymap),
      ...foldKeymap,
      ...completionKeymap,
      ...lintKeymap,
    ]),
  ];
}

function pageIsDark() {
  const marked = document.documentElement.dataset.theme;
  if (marked) return marked === "dark";
  return Boolean(globalThis.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches);
}

/**
 * A CodeMirror EditorView in `element`. Options:
 *   doc        initial text (ignored with ytext)
 *   language   a key of `languages` (default "text")
 *   readOnly   true to show the text without editing
 *   theme      "auto" (the page's theme, the default), "light" or "dark"
 *   onChange   called with the whole text after each change
 *   ytext      a Y.Text to edit collaboratively; awareness: a y-protocols Awareness
 *   extensions more CodeMirror extensions
 * The returned view also has setLanguage(name), which switches the language in place.
 */
export function createEditor(element, options = {}) {
  const {
    doc = "", language = "text", readOnly = false, theme = "auto", onChange,
    ytext, awareness, extensions = [],
  } = options;
  if (!Object.hasOwn(languages, language)) {
    throw new Error(`unknown language ${language}: one of ${Object.keys(languages).join(", ")}`);
  }
  const languageSlot = new Compartment();
  const dark = theme === "auto" ? pageIsDark() : theme === "dark";
  const view = new EditorView({
    parent: element,
    state: EditorState.create({
      doc: ytext ? ytext.toString() : doc,
      extensions: [
        basicSetup({undoHistory: !ytext}),
        keymap.of([indentWithTab]),
        languageSlot.of(languages[language]()),
        dark ? oneDark : [],
        EditorState.readOnly.of(readOnly),
        EditorView.editable.of(!readOnly),
        onChange
          ? EditorView.updateListener.of((update) => {
            if (update.docChanged) onChange(update.state.doc.toString());
          })
          : [],
        ytext
          ? yCollab(ytext, awareness || null, {undoManager: new Y.UndoManager(ytext)})
          : [],
        extensions,
      ],
    }),
  });
  view.setLanguage = (name) => {
    if (!Object.hasOwn(languages, name)) throw new Error(`unknown language ${name}`);
    view.dispatch({effects: languageSlot.reconfigure(languages[name]())});
  };
  return view;
}
