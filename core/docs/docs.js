/* The /docs page: renders /openapi.json (operations by tag, parameters, bodies, responses
 * with their schemas) and lets each operation be tried. Everything the document says is
 * data: it only ever reaches the page as text (textContent), never as markup. */
(function () {
  'use strict';

  var TOKEN_KEY = 'taskora.docs.token';
  var MAX_DEPTH = 8;           /* schema nesting shown and used for examples */
  var STREAM_BYTES = 4096;     /* an event stream is shown up to this much, then cut */
  var STREAM_MS = 5000;        /* ... or after this long */
  var METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];
  var doc = null;
  var uid = 0;

  /* ---- DOM --------------------------------------------------------------------------- */

  function el(tag, attrs) {
    var e = document.createElement(tag);
    var k;
    for (k in attrs || {}) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === undefined) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }

  /* Appends each child: a node, a string (as text), or an array of them; null is skipped. */
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { add(parent, c); });
      else parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    }
  }

  function nextId(prefix) { uid += 1; return prefix + '-' + uid; }

  function slug(s) { return String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, ''); }

  /* Text with blank lines as paragraphs; `code` spans stay plain text in <code>. */
  function prose(text, cls) {
    var box = el('div', { 'class': cls || 'prose' });
    String(text || '').split(/\n\s*\n/).forEach(function (para) {
      var p = el('p');
      para.split(/(`[^`]+`)/).forEach(function (part) {
        if (/^`[^`]+`$/.test(part)) add(p, el('code', { text: part.slice(1, -1) }));
        else if (part) add(p, part);
      });
      add(box, p);
    });
    return box;
  }

  /* ---- references and schemas -------------------------------------------------------- */

  function resolveRef(ref) {
    if (typeof ref !== 'string' || ref.charAt(0) !== '#') return undefined;
    var node = doc;
    var parts = ref.slice(1).split('/').slice(1);
    for (var i = 0; i < parts.length && node !== undefined && node !== null; i++) {
      var key = decodeURIComponent(parts[i]).replace(/~1/g, '/').replace(/~0/g, '~');
      node = typeof node === 'object' ? node[key] : undefined;
    }
    return node;
  }

  /* Follows $refs (parameters, responses, bodies, schemas) to the object they name. */
  function deref(obj) {
    for (var n = 0; obj && typeof obj === 'object' && typeof obj.$ref === 'string' && n < 32; n++) {
      obj = resolveRef(obj.$ref);
    }
    return obj;
  }

  function refName(ref) { return String(ref).split('/').pop(); }

  function typeText(schema) {
    schema = deref(schema);
    if (!schema || typeof schema !== 'object') return schema === false ? 'nothing' : 'any';
    var t = schema.type;
    var s = Array.isArray(t) ? t.join(' | ') : (t || '');
    if (!s && schema.properties) s = 'object';
    if (!s && schema.items) s = 'array';
    if (!s && schema.enum) s = 'enum';
    if (!s && 'const' in schema) s = 'const';
    if (!s && (schema.oneOf || schema.anyOf)) s = 'one of';
    if (!s && schema.allOf) s = 'all of';
    if (s === 'array' && schema.items) s = typeText(schema.items) + '[]';
    if (schema.format) s += ' (' + schema.format + ')';
    return s || 'any';
  }

  function constraints(schema) {
    var out = [];
    var pairs = [['minLength', 'min length'], ['maxLength', 'max length'], ['minimum', 'min'],
                 ['maximum', 'max'], ['exclusiveMinimum', 'above'], ['exclusiveMaximum', 'below'],
                 ['minItems', 'min items'], ['maxItems', 'max items'], ['pattern', 'pattern'],
                 ['default', 'default']];
    pairs.forEach(function (p) {
      if (p[0] in schema) out.push(p[1] + ' ' + JSON.stringify(schema[p[0]]));
    });
    if (schema.enum) out.push('one of ' + schema.enum.map(function (v) { return JSON.stringify(v); }).join(', '));
    if ('const' in schema) out.push('always ' + JSON.stringify(schema['const']));
    return out;
  }

  /* A schema as a nested list: type, constraints, description, properties, items, variants. */
  function schemaView(schema, depth, seen) {
    depth = depth || 0;
    seen = seen || [];
    var box = el('div', { 'class': 'schema' });
    var name = null;
    if (schema && typeof schema === 'object' && typeof schema.$ref === 'string') {
      name = refName(schema.$ref);
      if (seen.indexOf(schema.$ref) >= 0 || depth > MAX_DEPTH) {
        add(box, el('span', { 'class': 'type', text: name + ' (see above)' }));
        return box;
      }
      seen = seen.concat([schema.$ref]);
    }
    var s = deref(schema);
    add(box, el('span', { 'class': 'type', text: (name ? name + ': ' : '') + typeText(s) }));
    if (!s || typeof s !== 'object') return box;
    var notes = constraints(s);
    if (notes.length) add(box, el('span', { 'class': 'constraints', text: ' — ' + notes.join('; ') }));
    if (s.description) add(box, prose(s.description, 'schema-desc'));
    if (depth > MAX_DEPTH) return box;
    if (s.properties) {
      var req = s.required || [];
      var list = el('ul', { 'class': 'props' });
      Object.keys(s.properties).forEach(function (p) {
        add(list, el('li', null, el('code', { 'class': 'prop', text: p }),
          req.indexOf(p) >= 0 ? el('span', { 'class': 'required', text: ' required' }) : null,
          schemaView(s.properties[p], depth + 1, seen)));
      });
      add(box, list);
    }
    if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      add(box, el('div', { 'class': 'sub' }, el('span', { 'class': 'label', text: 'other keys: ' }),
        schemaView(s.additionalProperties, depth + 1, seen)));
    }
    var it = s.items;
    if (it && typeof it === 'object' && (it.$ref || it.properties || it.oneOf || it.anyOf ||
                                         it.allOf || it.enum || it.description)) {
      add(box, el('div', { 'class': 'sub' }, el('span', { 'class': 'label', text: 'items: ' }),
        schemaView(s.items, depth + 1, seen)));
    }
    ['oneOf', 'anyOf', 'allOf'].forEach(function (k) {
      if (!Array.isArray(s[k])) return;
      var variants = el('ol', { 'class': 'variants' });
      s[k].forEach(function (v) { add(variants, el('li', null, schemaView(v, depth + 1, seen))); });
      add(box, el('div', { 'class': 'sub' }, el('span', { 'class': 'label', text: k + ':' }), variants));
    });
    return box;
  }

  /* An example value built from a schema: its example, default, first enum value, or by type. */
  function example(schema, depth, seen) {
    depth = depth || 0;
    seen = seen || [];
    if (schema && typeof schema.$ref === 'string') {
      if (seen.indexOf(schema.$ref) >= 0 || depth > MAX_DEPTH) return null;
      seen = seen.concat([schema.$ref]);
    }
    var s = deref(schema);
    if (!s || typeof s !== 'object') return null;
    if ('example' in s) return s.example;
    if (Array.isArray(s.examples) && s.examples.length) return s.examples[0];
    if ('default' in s) return s['default'];
    if ('const' in s) return s['const'];
    if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
    if (Array.isArray(s.oneOf) && s.oneOf.length) return example(s.oneOf[0], depth + 1, seen);
    if (Array.isArray(s.anyOf) && s.anyOf.length) return example(s.anyOf[0], depth + 1, seen);
    if (Array.isArray(s.allOf)) {
      var merged = {};
      s.allOf.forEach(function (part) {
        var v = example(part, depth + 1, seen);
        if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(merged, v);
      });
      return merged;
    }
    var t = Array.isArray(s.type) ? s.type.filter(function (x) { return x !== 'null'; })[0] : s.type;
    if (!t && s.properties) t = 'object';
    if (t === 'object') {
      var o = {};
      Object.keys(s.properties || {}).forEach(function (p) {
        o[p] = example(s.properties[p], depth + 1, seen);
      });
      return o;
    }
    if (t === 'array') return s.items ? [example(s.items, depth + 1, seen)] : [];
    if (t === 'integer' || t === 'number') return typeof s.minimum === 'number' ? s.minimum : 0;
    if (t === 'boolean') return false;
    if (t === 'string') {
      if (s.format === 'date-time') return new Date().toISOString();
      if (s.format === 'date') return new Date().toISOString().slice(0, 10);
      if (s.format === 'email') return 'user@example.com';
      if (s.format === 'uri') return 'https://example.com/';
      return 'string';
    }
    return null;
  }

  /* ---- one operation ----------------------------------------------------------------- */

  /* The security schemes an operation asks for (any one of them); none: it is public. */
  function schemesOf(op) {
    var sec = op.security !== undefined ? op.security : doc.security;
    if (!Array.isArray(sec) || sec.some(function (req) { return Object.keys(req).length === 0; })) {
      return [];
    }
    var names = [];
    sec.forEach(function (req) { names = names.concat(Object.keys(req)); });
    return names;
  }

  function isPublic(op) { return schemesOf(op).length === 0; }

  /* Whether the token field's bearer token goes with this operation. */
  function wantsBearer(op) {
    var schemes = (doc.components || {}).securitySchemes || {};
    return schemesOf(op).some(function (name) {
      var s = deref(schemes[name]) || {};
      return s.type === 'http' && String(s.scheme).toLowerCase() === 'bearer';
    });
  }

  function parametersView(params) {
    var table = el('table', { 'class': 'params' },
      el('caption', { text: 'Parameters' }),
      el('thead', null, el('tr', null, ['Name', 'In', 'Type', 'Description'].map(function (h) {
        return el('th', { scope: 'col', text: h });
      }))));
    var body = el('tbody');
    params.forEach(function (p) {
      add(body, el('tr', null,
        el('td', null, el('code', { text: p.name }), p.required ? el('span', { 'class': 'required', text: ' required' }) : null),
        el('td', { text: p['in'] }),
        el('td', null, p.schema ? schemaView(p.schema) : el('span', { text: 'see content' })),
        el('td', null, p.description ? prose(p.description) : null)));
    });
    add(table, body);
    return table;
  }

  function contentView(content) {
    var box = el('div', { 'class': 'content' });
    Object.keys(content || {}).forEach(function (type) {
      var media = content[type] || {};
      add(box, el('div', { 'class': 'media' }, el('code', { 'class': 'media-type', text: type }),
        media.schema !== undefined ? schemaView(media.schema) : null));
    });
    return box;
  }

  function responsesView(responses) {
    var list = el('dl', { 'class': 'responses' });
    Object.keys(responses || {}).forEach(function (code) {
      var r = deref(responses[code]) || {};
      var name = responses[code] && responses[code].$ref ? refName(responses[code].$ref) : null;
      add(list, el('dt', { 'class': 'status status-' + String(code).charAt(0), text: code }));
      add(list, el('dd', null,
        prose((r.description || '') + (name ? ' (' + name + ')' : '')),
        r.headers ? el('p', { 'class': 'headers' }, 'Headers: ',
          Object.keys(r.headers).map(function (h, i) {
            return [i ? ', ' : '', el('code', { text: h })];
          })) : null,
        r.content ? contentView(r.content) : null));
    });
    return list;
  }

  /* The parameters an operation takes, path ones first, references followed. */
  function paramsOf(op) {
    return (op.parameters || []).map(deref).filter(function (p) { return p && p.name && p['in']; });
  }

  function bodyExample(op) {
    var body = deref(op.requestBody);
    if (!body || !body.content) return null;
    var type = body.content['application/json'] ? 'application/json' : Object.keys(body.content)[0];
    var media = body.content[type] || {};
    var value = 'example' in media ? media.example : example(media.schema);
    return { type: type, text: typeof value === 'string' && type !== 'application/json'
      ? value : JSON.stringify(value, null, 2) };
  }

  function tryView(path, method, op) {
    var form = el('form', { 'class': 'try' });
    var fields = [];
    add(form, el('h4', { text: 'Try it' }));
    paramsOf(op).forEach(function (p) {
      if (p['in'] === 'cookie') return;
      var id = nextId('p');
      var input = el('input', { id: id, name: p.name, type: 'text', autocomplete: 'off',
                                required: p.required ? 'required' : undefined });
      var ex = p.example !== undefined ? p.example : (p.schema ? example(p.schema) : null);
      if (ex !== null && ex !== undefined && p['in'] !== 'path') input.placeholder = String(ex);
      fields.push({ p: p, input: input });
      add(form, el('div', { 'class': 'field' },
        el('label', { 'for': id, text: p.name + ' (' + p['in'] + (p.required ? ', required' : '') + ')' }),
        input));
    });
    var bodyInfo = bodyExample(op);
    var textarea = null;
    if (bodyInfo) {
      var bid = nextId('body');
      textarea = el('textarea', { id: bid, name: 'body', rows: String(Math.min(16, bodyInfo.text.split('\n').length + 1)),
                                  spellcheck: 'false' });
      textarea.value = bodyInfo.text;
      add(form, el('div', { 'class': 'field' },
        el('label', { 'for': bid, text: 'Body (' + bodyInfo.type + ')' }), textarea));
    }
    var send = el('button', { type: 'submit', 'class': 'send', text: 'Send ' + method.toUpperCase() + ' ' + path });
    var out = el('div', { 'class': 'result', 'aria-live': 'polite' });
    add(form, send, out);
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      send.disabled = true;
      run(path, method, op, fields, textarea, bodyInfo, out).then(function () { send.disabled = false; });
    });
    return form;
  }

  function buildUrl(path, fields) {
    var url = path;
    var query = new URLSearchParams();
    var headers = {};
    var missing = [];
    fields.forEach(function (f) {
      var v = f.input.value;
      if (f.p['in'] === 'path') {
        if (!v) missing.push(f.p.name);
        url = url.split('{' + f.p.name + '}').join(encodeURIComponent(v));
      } else if (v !== '' && f.p['in'] === 'query') {
        query.append(f.p.name, v);
      } else if (v !== '' && f.p['in'] === 'header') {
        headers[f.p.name] = v;
      }
    });
    var qs = query.toString();
    return { url: url + (qs ? '?' + qs : ''), headers: headers, missing: missing };
  }

  function showResult(out, parts) {
    out.textContent = '';
    add(out, parts);
  }

  /* Reads a body as text; an event stream only its first bytes, since it never ends. */
  function readBody(res) {
    var type = res.headers.get('Content-Type') || '';
    if (type.indexOf('text/event-stream') !== 0 || !res.body || !res.body.getReader) {
      return res.text();
    }
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var text = '';
    var timer;
    var stop = new Promise(function (resolve) { timer = setTimeout(resolve, STREAM_MS); });
    function pump() {
      return Promise.race([reader.read(), stop.then(function () { return { done: true }; })])
        .then(function (chunk) {
          if (chunk.value) text += decoder.decode(chunk.value, { stream: true });
          if (chunk.done || text.length >= STREAM_BYTES) {
            clearTimeout(timer);
            reader.cancel().catch(function () {});
            return text + '\n[event stream: first ' + text.length + ' characters shown]';
          }
          return pump();
        });
    }
    return pump();
  }

  function run(path, method, op, fields, textarea, bodyInfo, out) {
    var built = buildUrl(path, fields);
    if (built.missing.length) {
      showResult(out, el('p', { 'class': 'error', text: 'Fill in the path parameter(s): ' + built.missing.join(', ') }));
      return Promise.resolve();
    }
    var headers = built.headers;
    var init = { method: method.toUpperCase(), headers: headers, credentials: 'same-origin' };
    var token = readToken();
    if (token && wantsBearer(op)) headers.Authorization = 'Bearer ' + token;
    if (textarea && method !== 'get' && method !== 'head') {
      init.body = textarea.value;
      headers['Content-Type'] = bodyInfo.type;
    }
    showResult(out, el('p', { text: 'Sending ' + init.method + ' ' + built.url + '…' }));
    var started = Date.now();
    return fetch(built.url, init).then(function (res) {
      return readBody(res).then(function (text) {
        var shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
        var hdrs = [];
        res.headers.forEach(function (v, k) { hdrs.push(k + ': ' + v); });
        showResult(out, [
          el('p', { 'class': 'status-line' }, el('span', { 'class': 'status status-' + String(res.status).charAt(0), text: String(res.status) }),
            ' ' + (res.statusText || '') + ' — ' + init.method + ' ' + built.url + ' in ' + (Date.now() - started) + ' ms'),
          el('h5', { text: 'Headers' }), el('pre', { 'class': 'headers', text: hdrs.join('\n') }),
          el('h5', { text: 'Body' }), el('pre', { 'class': 'body', text: shown || '(empty)' })
        ]);
      });
    }).catch(function (err) {
      showResult(out, el('p', { 'class': 'error', text: 'The request failed: ' + err }));
    });
  }

  function operationView(path, method, op) {
    var id = 'op-' + slug(method + '-' + path);
    var details = el('details', { 'class': 'op', id: id });
    details.dataset.search = (method + ' ' + path + ' ' + (op.summary || '') + ' ' + (op.operationId || '')).toLowerCase();
    add(details, el('summary', null,
      el('span', { 'class': 'method method-' + method, text: method.toUpperCase() }),
      el('code', { 'class': 'path', text: path }),
      el('span', { 'class': 'summary', text: op.summary || '' }),
      op['x-taskora-undescribed'] ? el('span', { 'class': 'badge undescribed', text: 'undescribed' }) : null,
      isPublic(op) ? el('span', { 'class': 'badge public', text: 'public' })
        : el('span', { 'class': 'badge auth', text: wantsBearer(op) ? 'bearer token' : schemesOf(op).join(' or ') })));
    var body = el('div', { 'class': 'op-body' });
    if (op.description) add(body, prose(op.description));
    if (op.deprecated) add(body, el('p', { 'class': 'deprecated', text: 'Deprecated.' }));
    var params = paramsOf(op);
    if (params.length) add(body, parametersView(params));
    var reqBody = deref(op.requestBody);
    if (reqBody) {
      add(body, el('h4', { text: 'Request body' + (reqBody.required ? ' (required)' : '') }));
      if (reqBody.description) add(body, prose(reqBody.description));
      add(body, contentView(reqBody.content));
    }
    if (op.responses) {
      add(body, el('h4', { text: 'Responses' }));
      add(body, responsesView(op.responses));
    }
    add(body, tryView(path, method, op));
    add(details, body);
    return details;
  }

  /* ---- the page ---------------------------------------------------------------------- */

  function byTag() {
    var groups = {};
    var order = (doc.tags || []).map(function (t) { return t.name; });
    Object.keys(doc.paths || {}).forEach(function (path) {
      var item = doc.paths[path] || {};
      METHODS.forEach(function (m) {
        var op = item[m];
        if (!op) return;
        (op.tags && op.tags.length ? op.tags : ['other']).forEach(function (t) {
          if (!groups[t]) groups[t] = [];
          if (order.indexOf(t) < 0) order.push(t);
          groups[t].push({ path: path, method: m, op: op });
        });
      });
    });
    return order.filter(function (t) { return groups[t]; }).map(function (t) {
      var info = (doc.tags || []).filter(function (x) { return x.name === t; })[0] || {};
      return { name: t, description: info.description, ops: groups[t] };
    });
  }

  function render() {
    var info = doc.info || {};
    document.title = (info.title || 'API') + ' — docs';
    document.getElementById('title').textContent = info.title || 'API';
    document.getElementById('version').textContent = 'Version ' + (info.version || '?') + ' · OpenAPI ' + (doc.openapi || '?');
    var intro = document.getElementById('intro');
    intro.textContent = '';
    if (info.description) add(intro, prose(info.description));
    var toc = document.getElementById('toc');
    var main = document.getElementById('main');
    toc.textContent = '';
    main.textContent = '';
    var tocList = el('ul');
    add(toc, el('h2', { text: 'Tags' }), tocList);
    byTag().forEach(function (group) {
      var sid = 'tag-' + slug(group.name);
      add(tocList, el('li', null, el('a', { href: '#' + sid, text: group.name + ' (' + group.ops.length + ')' })));
      var section = el('section', { 'class': 'tag', id: sid, 'aria-labelledby': sid + '-h' },
        el('h2', { id: sid + '-h', text: group.name }),
        group.description ? prose(group.description, 'tag-desc') : null);
      group.ops.forEach(function (o) { add(section, operationView(o.path, o.method, o.op)); });
      add(main, section);
    });
  }

  function applyFilter() {
    var q = document.getElementById('filter').value.trim().toLowerCase();
    Array.prototype.forEach.call(document.querySelectorAll('section.tag'), function (section) {
      var any = false;
      Array.prototype.forEach.call(section.querySelectorAll('details.op'), function (d) {
        var hit = !q || d.dataset.search.indexOf(q) >= 0;
        d.hidden = !hit;
        any = any || hit;
      });
      section.hidden = !any;
    });
  }

  /* ---- the token --------------------------------------------------------------------- */

  function readToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return document.getElementById('token').value; }
  }

  function setupToken() {
    var input = document.getElementById('token');
    input.value = readToken();
    input.addEventListener('input', function () {
      try { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); } catch (e) { /* storage off */ }
    });
    document.getElementById('token-clear').addEventListener('click', function () {
      input.value = '';
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ }
      input.focus();
    });
    document.getElementById('auth').addEventListener('submit', function (ev) { ev.preventDefault(); });
  }

  function start() {
    setupToken();
    document.getElementById('filter').addEventListener('input', applyFilter);
    fetch('/openapi.json', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (res) {
        if (!res.ok) throw new Error('/openapi.json answered ' + res.status);
        return res.json();
      })
      .then(function (d) {
        doc = d;
        render();
        applyFilter();
        if (location.hash) {
          var target = document.getElementById(location.hash.slice(1));
          if (target && target.tagName === 'DETAILS') target.open = true;
          if (target) target.scrollIntoView();
        }
      })
      .catch(function (err) {
        var status = document.getElementById('status') || document.getElementById('main');
        status.textContent = 'Cannot show the API description: ' + err.message;
      });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
