/* The admin's JSON fields as editors: every textarea[data-json-editor] becomes a CodeMirror 5 editor in
 * JSON mode (line numbers, bracket matching, folding, a live syntax check naming line and column, a Format
 * button). The textarea stays in the form, keeps its id and always holds what the editor shows, so the
 * form posts exactly that; without JavaScript the textarea is used as it is.
 * A test (or a user script) reaches the editor as document.getElementById("id_conditions").jsonEditor. */
(function () {
  "use strict";

  var MIN_LINES = 4;
  var MAX_VIEWPORT_SHARE = 0.7;  // an editor taller than this share of the window scrolls inside itself
  var JSON_WHITESPACE = " \t\n\r";

  /* Where the first syntax error of `text` is, or null for valid JSON (or nothing at all: a cleared
   * field saves its empty default). Returns {message, line, column} with line and column from 1. */
  function syntaxError(text) {
    if (!text.trim()) return null;
    try {
      JSON.parse(text);
      return null;
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      var where = positionOf(text, error.message);
      return {message: reworded(error.message), line: where.line, column: where.column};
    }
  }

  /* The line and column a browser's JSON.parse message names (Firefox: "line L column C", Chrome:
   * "position N"); when it names none (Safari, or Chrome's "Unexpected end", "Unexpected token"), our
   * own scan finds the first offending character. */
  function positionOf(text, message) {
    var match = /line (\d+) column (\d+)/i.exec(message);
    if (match) return {line: Number(match[1]), column: Number(match[2])};
    match = /position (\d+)/i.exec(message);
    var offset = match ? Number(match[1]) : errorOffset(text);
    var before = text.slice(0, Math.min(offset, text.length)).split("\n");
    return {line: before.length, column: before[before.length - 1].length + 1};
  }

  /* The browser's message without the position it gives in its own words (we name line and column). */
  function reworded(message) {
    var text = message
      .replace(/^JSON\.parse: /, "")
      .replace(/^JSON Parse error: /, "")
      .replace(/ at line \d+ column \d+ of the JSON data$/, "")
      .replace(/ at position \d+( \(line \d+ column \d+\))?$/, "")
      .replace(/ in JSON$/, "")
      .replace(/^(Unexpected token '.+?'),\s*"[\s\S]*is not valid JSON$/, "$1");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /* The offset of the first character that cannot continue valid JSON (text.length at an early end). */
  function errorOffset(text) {
    var i = 0;
    var NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    function fail() { throw {offset: i}; }
    function skipWhitespace() { while (i < text.length && JSON_WHITESPACE.indexOf(text[i]) >= 0) i++; }
    function expect(character) { if (text[i] !== character) fail(); i++; }
    function literal(word) {
      for (var k = 0; k < word.length; k++, i++) if (text[i] !== word[k]) fail();
    }
    function string() {
      expect('"');
      for (;;) {
        if (i >= text.length || text[i] < " ") fail();
        if (text[i] === '"') { i++; return; }
        if (text[i] !== "\\") { i++; continue; }
        i++;
        if (text[i] === "u") {
          for (var k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] || "")) { i += k; fail(); }
          i += 5;
        } else if (text[i] !== undefined && '"\\/bfnrt'.indexOf(text[i]) >= 0) {
          i++;
        } else {
          fail();
        }
      }
    }
    function container(open, close, member) {
      expect(open);
      skipWhitespace();
      if (text[i] === close) { i++; return; }
      for (;;) {
        member();
        skipWhitespace();
        if (text[i] === close) { i++; return; }
        expect(",");
      }
    }
    function value() {
      skipWhitespace();
      var c = text[i];
      if (c === "{") {
        container("{", "}", function () { skipWhitespace(); string(); skipWhitespace(); expect(":"); value(); });
      } else if (c === "[") {
        container("[", "]", value);
      } else if (c === '"') {
        string();
      } else if (c === "t") {
        literal("true");
      } else if (c === "f") {
        literal("false");
      } else if (c === "n") {
        literal("null");
      } else {
        NUMBER.lastIndex = i;
        var match = NUMBER.exec(text);
        if (!match || !match[0] || match[0] === "-") fail();
        i += match[0].length;
      }
    }
    try {
      value();
      skipWhitespace();
      if (i < text.length) fail();
      return text.length;  // JSON.parse refused what we accept: point at the end rather than guess
    } catch (stop) {
      if (stop && typeof stop.offset === "number") return stop.offset;
      return text.length;  // nested too deep for this scan
    }
  }

  /* Valid JSON `text` indented by two spaces, as the server shows it (Python's json.dumps(indent=2)).
   * Token by token, not through JSON.parse: numbers, key order and escapes stay exactly as typed. */
  function formatted(text) {
    var out = [];
    var depth = 0;
    var i = 0;
    function newline() { out.push("\n" + "  ".repeat(depth)); }
    while (i < text.length) {
      var c = text[i];
      var j;
      if (JSON_WHITESPACE.indexOf(c) >= 0) {
        i++;
      } else if (c === '"') {
        for (j = i + 1; text[j] !== '"'; j += text[j] === "\\" ? 2 : 1);
        out.push(text.slice(i, j + 1));
        i = j + 1;
      } else if (c === "{" || c === "[") {
        for (j = i + 1; j < text.length && JSON_WHITESPACE.indexOf(text[j]) >= 0; j++);
        if (text[j] === (c === "{" ? "}" : "]")) {
          out.push(c + text[j]);
          i = j + 1;
        } else {
          depth++;
          out.push(c);
          newline();
          i++;
        }
      } else if (c === "}" || c === "]") {
        depth--;
        newline();
        out.push(c);
        i++;
      } else if (c === ",") {
        out.push(",");
        newline();
        i++;
      } else if (c === ":") {
        out.push(": ");
        i++;
      } else {
        for (j = i; j < text.length && (JSON_WHITESPACE + ",:]}").indexOf(text[j]) < 0; j++);
        out.push(text.slice(i, j));
        i = j;
      }
    }
    return out.join("");
  }

  function describe(error) {
    return "Line " + error.line + ", column " + error.column + ": " + error.message;
  }

  function fitHeight(cm) {
    var lineHeight = cm.defaultTextHeight();
    var least = MIN_LINES * lineHeight + 8;
    var most = Math.max(least, Math.round(window.innerHeight * MAX_VIEWPORT_SHARE));
    // The bottom of the last line, plus the editor's padding and borders.
    var content = cm.heightAtLine(cm.lineCount(), "local") + 10;
    var height = Math.max(least, Math.min(most, content));
    if (Math.abs(cm.getWrapperElement().offsetHeight - height) > 1) cm.setSize(null, height);
  }

  function showStatus(status, error) {
    status.textContent = error ? describe(error) : "";
    status.classList.toggle("json-editor-invalid", Boolean(error));
  }

  function enhance(textarea) {
    if (textarea.jsonEditor || !window.CodeMirror || textarea.closest(".empty-form")) return;

    // A box of its own, so the editor and its bar stack under each other beside the field's label.
    var box = document.createElement("div");
    box.className = "json-editor";
    textarea.parentNode.insertBefore(box, textarea);
    box.appendChild(textarea);

    var status = document.createElement("div");
    status.className = "json-editor-status";
    status.id = textarea.id ? textarea.id + "_json_status" : "";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");

    var cm = window.CodeMirror.fromTextArea(textarea, {
      mode: {name: "javascript", json: true},
      lineNumbers: true,
      lineWrapping: true,
      indentUnit: 2,
      tabSize: 2,
      smartIndent: true,
      matchBrackets: true,
      autoCloseBrackets: true,
      foldGutter: true,
      gutters: ["CodeMirror-lint-markers", "CodeMirror-linenumbers", "CodeMirror-foldgutter"],
      lint: {
        delay: 250,
        getAnnotations: function (text) {
          var error = syntaxError(text);
          showStatus(status, error);
          if (!error) return [];
          var from = window.CodeMirror.Pos(error.line - 1, error.column - 1);
          var to = window.CodeMirror.Pos(error.line - 1, error.column);
          return [{from: from, to: to, message: describe(error), severity: "error"}];
        },
      },
      extraKeys: {
        "Shift-Alt-F": function () { formatButton.click(); },
        // Tab moves on to the next field, as in any form; indentation comes with Enter.
        "Tab": false,
        "Shift-Tab": false,
      },
    });

    var formatButton = document.createElement("button");
    formatButton.type = "button";
    formatButton.className = "button json-editor-format";
    formatButton.textContent = "Format";
    formatButton.title = "Indent the JSON (Shift-Alt-F)";
    formatButton.addEventListener("click", function () {
      var text = cm.getValue();
      var error = syntaxError(text);
      showStatus(status, error);
      if (error) {
        cm.focus();
        cm.setCursor(window.CodeMirror.Pos(error.line - 1, error.column - 1));
        return;
      }
      if (!text.trim()) return;
      var pretty = formatted(text);
      if (pretty !== text) cm.replaceRange(pretty, cm.posFromIndex(0), cm.posFromIndex(text.length), "+format");
    });

    var bar = document.createElement("div");
    bar.className = "json-editor-bar";
    bar.appendChild(formatButton);
    bar.appendChild(status);
    box.appendChild(bar);

    var wrapper = cm.getWrapperElement();
    if (textarea.id) {
      // The field's <label for=...> points at the hidden textarea; focus the editor instead.
      cm.getInputField().setAttribute("aria-describedby", status.id);
      document.querySelectorAll('label[for="' + textarea.id + '"]').forEach(function (label) {
        label.addEventListener("click", function (event) { event.preventDefault(); cm.focus(); });
      });
    }
    if (textarea.hasAttribute("data-json-editor-write-only")) wrapper.classList.add("json-editor-write-only");

    cm.on("change", function () { cm.save(); });
    cm.on("changes", fitHeight);
    if (textarea.form) textarea.form.addEventListener("submit", function () { cm.save(); });

    textarea.jsonEditor = cm;
    fitHeight(cm);
  }

  function enhanceWithin(root) {
    root.querySelectorAll("textarea[data-json-editor]").forEach(enhance);
  }

  function refreshWithin(root) {
    root.querySelectorAll("textarea[data-json-editor]").forEach(function (textarea) {
      if (!textarea.jsonEditor) return;
      textarea.jsonEditor.refresh();
      fitHeight(textarea.jsonEditor);
    });
  }

  function start() {
    enhanceWithin(document);
    // A row added to an inline (Register's schemas) brings new textareas.
    document.addEventListener("formset:added", function (event) { enhanceWithin(event.target); });
    // An editor laid out while hidden (a collapsed fieldset) measures itself again when shown.
    document.addEventListener("toggle", function (event) { refreshWithin(event.target); }, true);
  }

  window.syncappJSONEditor = {syntaxError: syntaxError, formatted: formatted, enhance: enhance};

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
