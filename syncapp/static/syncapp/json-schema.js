/* What the JSON Schema of a configuration says about a place in the JSON being typed: the keys an object
 * there may have (completion), what a key means (hover) and what does not fit (errors at the line).
 * The schemas are those the server derives from each kind's declaration (syncapp/declared.py), so this
 * reads only what they use: $ref into $defs, properties, additionalProperties, items, anyOf, type, enum.
 * It helps while typing; the server's check, run when the form is saved, stays the authority.
 * Used by json-editor.js, as window.syncappJSONSchema. */
(function () {
  "use strict";

  var WORD = /[^\s{}\[\],:"]/;  // a character of an unquoted word (a key being typed without its quotes)

  /* ---------------------------------------------------------------------------------------------
   * The schema at a path */

  /* The node a "#/$defs/Name" reference points at, in `root`. */
  function pointed(root, reference) {
    return reference.replace(/^#\/?/, "").split("/").filter(Boolean).reduce(function (node, part) {
      return node && node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    }, root);
  }

  /* The schema with its $ref followed; the referring node's own keys (its description) win. */
  function resolved(root, schema) {
    for (var depth = 0; schema && typeof schema.$ref === "string" && depth < 32; depth++) {
      var own = Object.assign({}, schema);
      delete own.$ref;
      schema = Object.assign({}, pointed(root, schema.$ref), own);
    }
    return schema || {};
  }

  /* The schemas a value there may fit: the members of an anyOf (or oneOf), each resolved. */
  function alternatives(root, schema) {
    schema = resolved(root, schema);
    var options = schema.anyOf || schema.oneOf;
    if (!options) return [schema];
    return options.reduce(function (all, option) { return all.concat(alternatives(root, option)); }, []);
  }

  function typesOf(schema) {
    if (Array.isArray(schema.type)) return schema.type;
    return schema.type ? [schema.type] : [];
  }

  function isObjectSchema(schema) {
    var types = typesOf(schema);
    return types.indexOf("object") >= 0 || (!types.length && Boolean(schema.properties));
  }

  /* The schema of `segment` (a key, or an index of a list) inside a value of `schema`, or null. */
  function childSchema(root, schema, segment) {
    var options = alternatives(root, schema);
    for (var k = 0; k < options.length; k++) {
      var option = options[k];
      if (typeof segment === "number") {
        if (option.items && typeof option.items === "object") return option.items;
      } else if (option.properties && Object.prototype.hasOwnProperty.call(option.properties, segment)) {
        return option.properties[segment];
      } else if (option.additionalProperties && typeof option.additionalProperties === "object") {
        return option.additionalProperties;
      }
    }
    return null;
  }

  /* The schema at `path` (keys and indexes from the root), or null where it says nothing. */
  function schemaAt(root, path) {
    var schema = root;
    for (var k = 0; k < path.length && schema; k++) schema = childSchema(root, schema, path[k]);
    return schema;
  }

  /* The keys an object at `path` may have: [{name, schema}] in alphabetical order. */
  function keysAt(root, path) {
    var schema = schemaAt(root, path);
    var keys = [];
    var seen = {};
    if (!schema) return keys;
    alternatives(root, schema).filter(isObjectSchema).forEach(function (option) {
      Object.keys(option.properties || {}).forEach(function (name) {
        if (seen[name]) return;
        seen[name] = true;
        keys.push({name: name, schema: option.properties[name]});
      });
    });
    return keys.sort(function (a, b) { return a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1; });
  }

  /* A short name of what a value of `schema` is: "string", "integer or string", "object", "list of
   * string", 'one of "auto", "page", "next"'. */
  function typeLabel(root, schema) {
    var labels = [];
    alternatives(root, schema).forEach(function (option) {
      var label;
      if (option.enum) {
        label = "one of " + option.enum.map(function (value) { return JSON.stringify(value); }).join(", ");
      } else if (typesOf(option).indexOf("array") >= 0 && option.items) {
        label = "list of " + typeLabel(root, option.items);
      } else {
        label = typesOf(option).join(" or ") || "any JSON value";
      }
      if (labels.indexOf(label) < 0) labels.push(label);
    });
    // Any number covers the whole ones.
    if (labels.indexOf("number") >= 0) labels = labels.filter(function (label) { return label !== "integer"; });
    return labels.join(" or ");
  }

  /* What the key means: {type, description} of the key's schema. */
  function described(root, schema) {
    var description = resolved(root, schema).description;
    if (!description) {
      alternatives(root, schema).some(function (option) { return (description = option.description); });
    }
    return {type: typeLabel(root, schema), description: description || ""};
  }

  /* ---------------------------------------------------------------------------------------------
   * A place in the text */

  /* A tolerant scan of JSON as it is being typed (perhaps unfinished or wrong). Returns
   *   keys: every key written, {path, from, to} (path: the keys and indexes down to it, from/to: offsets
   *         of its quoted text);
   *   at:   what is at `offset`: {path} of the innermost object or list, {inKey} whether a key is being
   *         written there, {from, to, typed, word} the key's text being written (quotes included in
   *         from/to, typed: what comes before the offset, word: all of it) and {present} the other keys
   *         of that object, those after the offset included. */
  function scan(text, offset) {
    var stack = [{kind: "root", path: []}];
    var keys = [];
    var at = null;
    var i = 0;

    function top() { return stack[stack.length - 1]; }

    function valuePath() {
      var frame = top();
      if (frame.kind === "object") return frame.path.concat([frame.key === null ? "" : frame.key]);
      if (frame.kind === "array") return frame.path.concat([frame.index]);
      return frame.path;
    }

    function place(from, to, word, typed) {
      var frame = top();
      var inKey = frame.kind === "object" && frame.expectKey && !frame.pending;
      at = {frame: frame, path: frame.path, inKey: inKey, from: from, to: to, word: word, typed: typed};
    }

    while (i < text.length) {
      var c = text[i];
      if (" \t\r\n".indexOf(c) >= 0) {
        i++;
        continue;
      }
      if (at === null && offset <= i) place(offset, offset, "", "");
      var start = i;
      var frame = top();
      if (c === '"') {
        // A string ends at its closing quote, or (still being typed) at the end of its line.
        for (i++; i < text.length && text[i] !== '"' && text[i] !== "\n"; i += text[i] === "\\" ? 2 : 1);
        var closed = text[i] === '"';
        var end = closed ? i + 1 : Math.min(i, text.length);
        var raw = text.slice(start + 1, Math.min(i, text.length));
        var name = raw;
        try { name = JSON.parse('"' + raw + '"'); } catch (error) { /* shown as typed */ }
        if (at === null && start < offset && (offset < end || !closed)) {
          place(start, end, name, text.slice(start + 1, offset));
        }
        if (frame.kind === "object" && frame.expectKey) frame.pending = {name: name, from: start, to: end};
        i = end;
      } else if (c === "{" || c === "[") {
        stack.push(c === "{"
          ? {kind: "object", path: valuePath(), key: null, expectKey: true, pending: null, names: []}
          : {kind: "array", path: valuePath(), index: 0});
        i++;
      } else if (c === "}" || c === "]") {
        if (stack.length > 1) stack.pop();
        i++;
      } else if (c === ",") {
        if (frame.kind === "object") {
          frame.expectKey = true;
          frame.key = null;
          frame.pending = null;
        } else if (frame.kind === "array") {
          frame.index++;
        }
        i++;
      } else if (c === ":") {
        if (frame.kind === "object" && frame.pending) {
          frame.key = frame.pending.name;
          frame.names.push(frame.key);
          keys.push({path: frame.path.concat([frame.key]), from: frame.pending.from, to: frame.pending.to});
          frame.pending = null;
        }
        if (frame.kind === "object") frame.expectKey = false;
        i++;
      } else {
        while (i < text.length && WORD.test(text[i])) i++;
        if (i === start) i++;
        if (at === null && start < offset && offset <= i) {
          place(start, i, text.slice(start, i), text.slice(start, offset));
        }
      }
    }
    if (at === null) place(offset, offset, "", "");
    var own = at.word;
    at.present = (at.frame.names || []).filter(function (name) {
      if (name === own && at.inKey) {
        own = null;  // the key being written is not one already there
        return false;
      }
      return true;
    });
    delete at.frame;
    return {keys: keys, at: at};
  }

  /* ---------------------------------------------------------------------------------------------
   * What does not fit */

  var TYPE_WORDS = {
    string: "text", integer: "a whole number", number: "a number", boolean: "true or false",
    object: "an object", array: "a list", "null": "null",
  };

  function isPlainObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function fitsType(schema, value) {
    var types = typesOf(schema);
    if (!types.length) return true;
    return types.some(function (type) {
      switch (type) {
        case "string": return typeof value === "string";
        case "integer": return typeof value === "number" && Number.isInteger(value);
        case "number": return typeof value === "number";
        // The server also reads OpenConnector's "true"/"false" text as a boolean (syncapp.declared.Flag).
        case "boolean": return typeof value === "boolean" || /^\s*(true|false|1|0)\s*$/i.test(String(value));
        case "object": return isPlainObject(value);
        case "array": return Array.isArray(value);
        case "null": return value === null;
        default: return true;
      }
    });
  }

  /* The edit distance of two names, a swap of neighbours counting as one edit. */
  function distance(a, b) {
    var rows = [];
    for (var x = 0; x <= a.length; x++) {
      rows.push([x]);
      for (var y = 1; y <= b.length; y++) {
        if (x === 0) {
          rows[x].push(y);
          continue;
        }
        var cost = a[x - 1] === b[y - 1] ? 0 : 1;
        var best = Math.min(rows[x - 1][y] + 1, rows[x][y - 1] + 1, rows[x - 1][y - 1] + cost);
        if (x > 1 && y > 1 && a[x - 1] === b[y - 2] && a[x - 2] === b[y - 1]) best = Math.min(best, rows[x - 2][y - 2] + 1);
        rows[x].push(best);
      }
    }
    return rows[a.length][b.length];
  }

  /* How an unknown key is named, as the server words it: with the closest known name. */
  function unknownKey(key, known) {
    var camel = key.replace(/_([a-z0-9])/g, function (match, letter) { return letter.toUpperCase(); });
    if (camel !== key && known.indexOf(camel) >= 0) return "unknown key, did you mean `" + camel + "`? (keys are camelCase)";
    var best = null;
    var bestScore = 0.6;  // as close as the server's difflib cutoff asks
    known.forEach(function (name) {
      var score = 1 - distance(key.toLowerCase(), name.toLowerCase()) / Math.max(key.length, name.length);
      if (score >= bestScore) {
        best = name;
        bestScore = score + 1e-9;
      }
    });
    if (best) return "unknown key, did you mean `" + best + "`?";
    return known.length ? "unknown key (known: " + known.join(", ") + ")" : "unknown key";
  }

  /* `key` written as `headers.X`: an entry of the object-valued `headers`, which the server folds in. */
  function isDottedEntry(root, properties, key) {
    var dot = key.indexOf(".");
    if (dot <= 0 || !Object.prototype.hasOwnProperty.call(properties, key.slice(0, dot))) return false;
    return alternatives(root, properties[key.slice(0, dot)]).some(function (option) {
      return isObjectSchema(option) && option.additionalProperties !== false && !option.properties;
    });
  }

  function checkValue(root, schema, value, path, problems) {
    if (value === null) return;  // a key set to null is a key left out
    var options = alternatives(root, schema);
    var fitting = options.filter(function (option) { return fitsType(option, value); });
    if (!fitting.length) {
      var words = [];
      options.forEach(function (option) {
        typesOf(option).forEach(function (type) {
          if (words.indexOf(TYPE_WORDS[type]) < 0) words.push(TYPE_WORDS[type]);
        });
      });
      problems.push({path: path, message: "must be " + words.join(" or ")});
      return;
    }
    // The first member it fits whole; else what the first it fits by type says.
    var first = null;
    for (var k = 0; k < fitting.length; k++) {
      var found = [];
      checkMember(root, fitting[k], value, path, found);
      if (!found.length) return;
      first = first || found;
    }
    Array.prototype.push.apply(problems, first);
  }

  function checkMember(root, schema, value, path, problems) {
    if (schema.enum && !schema.enum.some(function (allowed) { return allowed === value; })) {
      problems.push({path: path, message: "must be one of " + schema.enum.join(", ")});
    }
    if (Array.isArray(value) && schema.items && typeof schema.items === "object") {
      value.forEach(function (item, index) { checkValue(root, schema.items, item, path.concat([index]), problems); });
    }
    if (!isPlainObject(value)) return;
    var properties = schema.properties || {};
    Object.keys(value).forEach(function (key) {
      if (Object.prototype.hasOwnProperty.call(properties, key)) {
        checkValue(root, properties[key], value[key], path.concat([key]), problems);
      } else if (isDottedEntry(root, properties, key)) {
        return;
      } else if (schema.additionalProperties === false) {
        problems.push({path: path.concat([key]), message: unknownKey(key, Object.keys(properties)), unknown: true});
      } else if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        checkValue(root, schema.additionalProperties, value[key], path.concat([key]), problems);
      }
    });
  }

  /* The problems of a parsed value against the schema: [{path, message}], the path as keys and indexes. */
  function problemsOf(root, value) {
    var problems = [];
    checkValue(root, root, value, [], problems);
    return problems;
  }

  /* A path as the server writes it: pagination.type, extraDataConfigs[0].source. */
  function pathText(path) {
    return path.reduce(function (text, part) {
      if (typeof part === "number") return text + "[" + part + "]";
      return text ? text + "." + part : part;
    }, "") || "(root)";
  }

  window.syncappJSONSchema = {
    resolved: resolved,
    schemaAt: schemaAt,
    keysAt: keysAt,
    described: described,
    scan: scan,
    problemsOf: problemsOf,
    pathText: pathText,
    unknownKey: unknownKey,
  };
})();
