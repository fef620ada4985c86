/* The admin's JSON fields as editors: every textarea[data-json-editor] becomes a CodeMirror 5 editor in
 * JSON mode (line numbers, bracket matching, folding, a live syntax check naming line and column, a Format
 * button). The textarea stays in the form, keeps its id and always holds what the editor shows, so the
 * form posts exactly that; without JavaScript the textarea is used as it is.
 * A textarea with data-json-schemas ({type: JSON Schema}) and data-schema-selector (the select of the
 * type, e.g. #id_source_type) is edited against the schema of the type chosen there (json-schema.js):
 * the keys allowed where the cursor is are offered as you type and on Ctrl-Space, a key's description
 * and type show on hover, and a key the schema refuses is marked at its line.
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

  /* The schemas of the textarea's types and the select that chooses one, or null. */
  function schemaChoice(textarea) {
    var text = textarea.getAttribute("data-json-schemas");
    var selector = textarea.getAttribute("data-schema-selector");
    var select = text && selector ? document.querySelector(selector) : null;
    if (!select) return null;
    var schemas = JSON.parse(text);
    return {
      select: select,
      current: function () { return Object.prototype.hasOwnProperty.call(schemas, select.value) ? schemas[select.value] : null; },
    };
  }

  /* Where each problem of valid JSON `text` against `schema` is: {message, line, column, from, to} (offsets
   * of the key it names, or of the nearest key above it). */
  function schemaErrors(text, schema) {
    var help = window.syncappJSONSchema;
    if (!schema || !text.trim()) return [];
    var where = {};
    help.scan(text, 0).keys.forEach(function (key) { where[JSON.stringify(key.path)] = where[JSON.stringify(key.path)] || key; });
    return help.problemsOf(schema, JSON.parse(text)).map(function (problem) {
      var path = problem.path.slice();
      while (path.length && !where[JSON.stringify(path)]) path.pop();
      var key = where[JSON.stringify(path)] || {from: 0, to: Math.min(1, text.length)};
      var before = text.slice(0, key.from).split("\n");
      return {
        message: "`" + help.pathText(problem.path) + "`: " + problem.message,
        line: before.length, column: before[before.length - 1].length + 1, from: key.from, to: key.to,
      };
    });
  }

  /* The completion of keys at the cursor: CodeMirror's show-hint data, or null where no key goes. */
  function keyHints(cm, schema) {
    var help = window.syncappJSONSchema;
    if (!schema) return null;
    var text = cm.getValue();
    var at = help.scan(text, cm.indexFromPos(cm.getCursor())).at;
    if (!at.inKey) return null;
    var typed = at.typed.toLowerCase();
    var keys = help.keysAt(schema, at.path).filter(function (key) { return at.present.indexOf(key.name) < 0; });
    var starting = keys.filter(function (key) { return key.name.toLowerCase().indexOf(typed) === 0; });
    var containing = keys.filter(function (key) {
      return key.name.toLowerCase().indexOf(typed) > 0;
    });
    var list = starting.concat(containing).map(function (key) {
      var doc = help.described(schema, key.schema);
      return {
        text: JSON.stringify(key.name) + ": ",
        displayText: key.name,
        className: "json-editor-hint",
        render: function (element) {
          [["json-editor-hint-key", key.name], ["json-editor-hint-type", doc.type],
           ["json-editor-hint-doc", doc.description]].forEach(function (part) {
            var span = element.appendChild(document.createElement("span"));
            span.className = part[0];
            span.textContent = part[1];
          });
        },
      };
    });
    if (!list.length) return null;
    // Replacing a key already followed by its colon replaces the colon too: the key is written whole.
    var to = at.to;
    var colon = /^\s*:[ \t]*/.exec(text.slice(to));
    if (at.word && colon) to += colon[0].length;
    return {list: list, from: cm.posFromIndex(at.from), to: cm.posFromIndex(to)};
  }

  /* The key under `pos` and what its schema says of it: {name, type, description, from, to}, or null. */
  function keyAt(cm, schema, pos) {
    var help = window.syncappJSONSchema;
    if (!schema) return null;
    var text = cm.getValue();
    var at = help.scan(text, cm.indexFromPos(pos) + 1).at;
    if (!at.inKey || !at.word || text[at.from] !== '"') return null;
    var property = help.schemaAt(schema, at.path.concat([at.word]));
    if (!property) return null;
    var doc = help.described(schema, property);
    return {name: at.word, type: doc.type, description: doc.description, from: at.from, to: at.to};
  }

  /* A tooltip with the description and type of the key under the mouse. */
  function showKeyDocs(cm, choice) {
    var tip = null;
    function hide() {
      if (tip) tip.remove();
      tip = null;
    }
    var wrapper = cm.getWrapperElement();
    wrapper.addEventListener("mousemove", function (event) {
      var pos = cm.coordsChar({left: event.clientX, top: event.clientY}, "window");
      var key = pos.outside ? null : keyAt(cm, choice.current(), pos);
      if (!key) return hide();
      if (!tip) {
        tip = document.body.appendChild(document.createElement("div"));
        tip.className = "json-editor-key-doc";
        tip.setAttribute("role", "tooltip");
      }
      tip.replaceChildren();
      [["json-editor-key-doc-name", key.name], ["json-editor-key-doc-type", key.type],
       ["json-editor-key-doc-text", key.description]].forEach(function (part) {
        var element = tip.appendChild(document.createElement("div"));
        element.className = part[0];
        element.textContent = part[1];
      });
      tip.style.left = (event.pageX + 12) + "px";
      tip.style.top = (event.pageY + 16) + "px";
    });
    wrapper.addEventListener("mouseleave", hide);
    cm.on("change", hide);
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

    var choice = window.syncappJSONSchema ? schemaChoice(textarea) : null;
    function schema() { return choice && choice.current(); }

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
          if (error) {
            showStatus(status, error);
            var from = window.CodeMirror.Pos(error.line - 1, error.column - 1);
            var to = window.CodeMirror.Pos(error.line - 1, error.column);
            return [{from: from, to: to, message: describe(error), severity: "error"}];
          }
          var problems = schemaErrors(text, schema());
          showStatus(status, problems[0]);
          return problems.map(function (problem) {
            return {from: cm.posFromIndex(problem.from), to: cm.posFromIndex(problem.to), message: describe(problem),
                    severity: "error"};
          });
        },
      },
      hintOptions: {completeSingle: false, closeOnUnfocus: true},
      extraKeys: {
        "Shift-Alt-F": function () { formatButton.click(); },
        "Ctrl-Space": function () { showKeys(); },
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

    /* The keys that may go at the cursor, in CodeMirror's completion list (show-hint.js). */
    function showKeys() {
      if (cm.showHint && keyHints(cm, schema())) cm.showHint({hint: function () { return keyHints(cm, schema()); }});
    }
    if (choice) {
      cm.on("inputRead", function (editor, change) {
        if (!cm.state.completionActive && /^[\w"$]$/.test(change.text.join(""))) showKeys();
      });
      showKeyDocs(cm, choice);
      // Another type chosen: its schema applies from now on.
      choice.select.addEventListener("change", function () {
        if (cm.state.completionActive) cm.closeHint();
        cm.performLint();
      });
    }

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

  window.syncappJSONEditor = {syntaxError: syntaxError, formatted: formatted, enhance: enhance, schemaErrors: schemaErrors};

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
