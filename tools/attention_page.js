// The attention explorer of tools/attention_page.py: inline in the page it writes, no network.
// Every <div class="attn-explorer" data-payload="ID"> gets its own explorer from the JSON in
// <script id="ID">; element ids carry the explorer's id, so explorers on one page are apart.
(function () {
  'use strict';

  const HEAD_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
    '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39',
    '#7b4173', '#3182bd'];
  const ROW = 20;          // px per token row in the head view
  const LINES_WIDTH = 220; // px between the two token columns
  const MIN_WEIGHT = 0.01; // lines lighter than this are not drawn
  const ALPHA_LEVELS = 32; // a line's opacity is its weight, in this many steps
  const LINE_BUDGET = 20000; // the most lines one drawing holds (the strongest are kept)
  // Colour maps as stops (matplotlib's viridis and inferno, sampled at 9 points).
  const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  const INFERNO = [[0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
    [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]];

  function colormap(stops, t) {
    t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(t));
    const f = t - i, a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }

  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function el(tag, props, parent, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  // ------------------------------------------------------------------ token view
  class TokenView {
    constructor(view, uid, host) {
      this.v = view;
      this.uid = uid;
      this.data = bytes(view.data);
      [this.nLayers, this.nHeads, this.q, this.k] = view.shape;
      this.layer = this.nLayers - 1;
      this.heads = new Set([...Array(this.nHeads).keys()]);
      this.focus = null;       // {side: 'q'|'k', index}
      this.panel = el('div', {class: 'ae-panel', id: uid}, host);
      if (view.note) el('div', {class: 'ae-note'}, this.panel, view.note);
      this.buildControls();
      this.buildHeadView();
      this.modelView = el('div', {class: 'ae-modelview', id: uid + '-modelview'}, this.panel);
      this.modelView.hidden = true;
      this.modelBuilt = false;
      this.draw();
    }

    weight(layer, head, i, j) {
      const off = (((layer * this.nHeads + head) * this.q + i) * this.k + j);
      return this.data[off] / 255 * this.v.scale[layer][head];
    }

    buildControls() {
      const bar = el('div', {class: 'ae-controls'}, this.panel);
      el('label', {for: this.uid + '-layer'}, bar, 'Layer ');
      this.layerSelect = el('select', {id: this.uid + '-layer'}, bar);
      this.v.layers.forEach((l, n) => el('option', {value: String(n)}, this.layerSelect,
                                         String(l)));
      this.layerSelect.value = String(this.layer);
      this.layerSelect.addEventListener('change', () => {
        this.layer = Number(this.layerSelect.value);
        this.draw();
      });
      el('span', {class: 'ae-label'}, bar, ' Heads ');
      this.headButtons = [];
      for (let h = 0; h < this.nHeads; h++) {
        const b = el('button', {class: 'ae-head', id: `${this.uid}-head${h}`, type: 'button',
                                title: `head ${h}: click to show or hide, double-click to show ` +
                                       'only this head',
                                style: `background:${HEAD_COLORS[h % HEAD_COLORS.length]}`},
                     bar, String(h));
        b.addEventListener('click', () => {
          if (this.heads.has(h)) this.heads.delete(h); else this.heads.add(h);
          this.draw();
        });
        b.addEventListener('dblclick', () => { this.heads = new Set([h]); this.draw(); });
        this.headButtons.push(b);
      }
      this.modeButton = el('button', {class: 'ae-mode', id: this.uid + '-mode', type: 'button'},
                           bar, 'model view');
      this.modeButton.addEventListener('click', () => this.setMode(!this.headView.hidden));
      this.status = el('span', {class: 'ae-status', id: this.uid + '-status'}, bar);
    }

    buildHeadView() {
      this.headView = el('div', {class: 'ae-headview', id: this.uid + '-headview'}, this.panel);
      const rows = Math.max(this.q, this.k);
      const column = (labels, side) => {
        const col = el('div', {class: 'ae-col ae-' + side}, this.headView);
        return labels.map((t, i) => {
          const d = el('div', {class: 'ae-tok', id: `${this.uid}-${side}${i}`, title: t}, col, t);
          d.addEventListener('mouseenter', () => { this.focus = {side, index: i}; this.draw(); });
          d.addEventListener('mouseleave', () => { this.focus = null; this.draw(); });
          return d;
        });
      };
      this.qTokens = column(this.v.queries, 'q');
      this.canvas = el('canvas', {class: 'ae-lines', id: this.uid + '-lines',
                                  width: String(LINES_WIDTH), height: String(rows * ROW)},
                       this.headView);
      this.kTokens = column(this.v.keys, 'k');
    }

    setMode(model) {
      if (model && !this.modelBuilt) this.buildModelView();
      this.headView.hidden = model;
      this.modelView.hidden = !model;
      this.modeButton.textContent = model ? 'head view' : 'model view';
    }

    draw() {
      this.layerSelect.value = String(this.layer);
      this.headButtons.forEach((b, h) => b.classList.toggle('ae-off', !this.heads.has(h)));
      const ctx = this.canvas.getContext('2d');
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      // Hairlines (width 1) rasterize much faster; short inputs can afford thicker lines.
      ctx.lineWidth = Math.max(this.q, this.k) <= 64 ? 2 : 1;
      const f = this.focus;
      const qs = f && f.side === 'q' ? [f.index] : [...Array(this.q).keys()];
      const ks = f && f.side === 'k' ? [f.index] : [...Array(this.k).keys()];
      // Lines are stroked in batches of equal opacity (ALPHA_LEVELS per head): a few strokes
      // instead of one per weight, which keeps hundreds of tokens interactive.
      // Beyond LINE_BUDGET lines (long inputs, every token), only the strongest are drawn: the
      // lightest weight drawn is raised until they fit, and the status line says so.
      let total = 0;
      const histogram = new Uint32Array(1025);
      for (const h of this.heads) {
        for (const i of qs) {
          for (const j of ks) {
            const w = this.weight(this.layer, h, i, j);
            if (w >= MIN_WEIGHT) { total++; histogram[Math.min(1024, Math.floor(w * 1024))]++; }
          }
        }
      }
      let floor = MIN_WEIGHT;
      if (total > LINE_BUDGET) {
        let kept = 0, level = 1024;
        while (level > 0 && kept + histogram[level] <= LINE_BUDGET) kept += histogram[level--];
        floor = Math.max(MIN_WEIGHT, (level + 1) / 1024);
      }
      let drawn = 0;
      for (const h of this.heads) {
        const buckets = Array.from({length: ALPHA_LEVELS + 1}, () => []);
        for (const i of qs) {
          for (const j of ks) {
            const w = this.weight(this.layer, h, i, j);
            if (w < floor) continue;
            buckets[Math.max(1, Math.round(Math.min(1, w) * ALPHA_LEVELS))].push(i, j);
            drawn++;
          }
        }
        ctx.strokeStyle = HEAD_COLORS[h % HEAD_COLORS.length];
        buckets.forEach((pairs, level) => {
          if (!pairs.length) return;
          ctx.globalAlpha = level / ALPHA_LEVELS;
          ctx.beginPath();
          for (let n = 0; n < pairs.length; n += 2) {
            ctx.moveTo(0, (pairs[n] + 0.5) * ROW);
            ctx.lineTo(LINES_WIDTH, (pairs[n + 1] + 0.5) * ROW);
          }
          ctx.stroke();
        });
      }
      ctx.globalAlpha = 1;
      this.qTokens.forEach((d, i) => d.classList.toggle('ae-focus', !!f && f.side === 'q' &&
                                                        f.index === i));
      this.kTokens.forEach((d, j) => d.classList.toggle('ae-focus', !!f && f.side === 'k' &&
                                                        f.index === j));
      const what = f ? (f.side === 'q' ? `from query ${f.index} (${this.v.queries[f.index]})`
                                       : `into key ${f.index} (${this.v.keys[f.index]})`)
                     : 'all tokens';
      this.status.textContent = ` layer ${this.v.layers[this.layer]}, ${this.heads.size} of ` +
          `${this.nHeads} heads, ${what}: ${drawn} lines` +
          (drawn < total ? ` (the strongest of ${total}, weights from ${floor.toFixed(3)}; ` +
                           'hover a token for all of its lines)' : '') +
          (this.v.causal ? ' (causal: a query sees only keys up to its own position)' : '');
      this.canvas.dataset.lines = String(drawn);
      this.canvas.dataset.total = String(total);
      this.canvas.dataset.floor = String(floor);
    }

    buildModelView() {
      const grid = el('div', {class: 'ae-grid', style:
                              `grid-template-columns: auto repeat(${this.nHeads}, auto)`},
                      this.modelView);
      el('div', {class: 'ae-corner'}, grid, 'layer \\ head');
      for (let h = 0; h < this.nHeads; h++) el('div', {class: 'ae-colhead'}, grid, String(h));
      const side = Math.min(96, Math.max(40, 4 * Math.max(this.q, this.k)));
      for (let l = 0; l < this.nLayers; l++) {
        el('div', {class: 'ae-rowhead'}, grid, String(this.v.layers[l]));
        for (let h = 0; h < this.nHeads; h++) {
          const c = el('canvas', {class: 'ae-thumb', id: `${this.uid}-m${l}-${h}`,
                                  width: String(this.k), height: String(this.q),
                                  title: `layer ${this.v.layers[l]}, head ${h}: open in the ` +
                                         'head view',
                                  style: `width:${side}px;height:${side}px`}, grid);
          const ctx = c.getContext('2d');
          const img = ctx.createImageData(this.k, this.q);
          const base = (l * this.nHeads + h) * this.q * this.k;
          for (let p = 0; p < this.q * this.k; p++) {
            const [r, g, b] = colormap(VIRIDIS, this.data[base + p] / 255);
            img.data.set([r, g, b, 255], 4 * p);
          }
          ctx.putImageData(img, 0, 0);
          c.addEventListener('click', () => {
            this.layer = l;
            this.heads = new Set([h]);
            this.focus = null;
            this.setMode(false);
            this.draw();
          });
        }
      }
      this.modelBuilt = true;
    }
  }

  // ------------------------------------------------------------------ image view
  class ImageView {
    constructor(view, uid, host) {
      this.v = view;
      this.uid = uid;
      this.panel = el('div', {class: 'ae-panel', id: uid}, host);
      if (view.note) el('div', {class: 'ae-note'}, this.panel, view.note);
      const bar = el('div', {class: 'ae-controls'}, this.panel);
      el('label', {for: uid + '-alpha'}, bar, 'Overlay opacity ');
      this.alpha = el('input', {type: 'range', id: uid + '-alpha', min: '0', max: '100',
                                value: '60'}, bar);
      this.alpha.addEventListener('input', () => this.draw());
      this.grid = el('div', {class: 'ae-images'}, this.panel);
      this.source = this.imageCanvas();
      this.maps = view.maps.map((m, n) => {
        const fig = el('figure', {class: 'ae-figure'}, this.grid);
        const c = el('canvas', {class: 'ae-image', id: `${uid}-map${n}`, width: '192',
                                height: String(Math.round(192 * view.height / view.width))}, fig);
        el('figcaption', {}, fig, `${m.name} (max ${m.scale.toFixed(3)})`);
        return {m, c, values: bytes(m.data)};
      });
      this.draw();
    }

    imageCanvas() {
      const {width, height, channels} = this.v;
      const px = bytes(this.v.pixels);
      const c = document.createElement('canvas');
      c.width = width;
      c.height = height;
      const ctx = c.getContext('2d');
      const img = ctx.createImageData(width, height);
      for (let p = 0; p < width * height; p++) {
        const r = px[p * channels], g = px[p * channels + (channels === 3 ? 1 : 0)],
              b = px[p * channels + (channels === 3 ? 2 : 0)];
        img.data.set([r, g, b, 255], 4 * p);
      }
      ctx.putImageData(img, 0, 0);
      return c;
    }

    draw() {
      const a = Number(this.alpha.value) / 100;
      for (const {m, c, values} of this.maps) {
        const ctx = c.getContext('2d');
        ctx.imageSmoothingEnabled = false;
        ctx.globalAlpha = 1;
        ctx.drawImage(this.source, 0, 0, c.width, c.height);
        const [gh, gw] = m.grid;
        const cw = c.width / gw, ch = c.height / gh;
        ctx.globalAlpha = a;
        for (let r = 0; r < gh; r++) {
          for (let col = 0; col < gw; col++) {
            const [R, G, B] = colormap(INFERNO, values[r * gw + col] / 255);
            ctx.fillStyle = `rgb(${R | 0},${G | 0},${B | 0})`;
            ctx.fillRect(col * cw, r * ch, Math.ceil(cw), Math.ceil(ch));
          }
        }
        ctx.globalAlpha = 1;
      }
    }
  }

  // ------------------------------------------------------------------ explorer
  class Explorer {
    constructor(root, payload) {
      this.root = root;
      const uid = root.id;
      el('h2', {class: 'ae-title'}, root, payload.title);
      for (const n of payload.notes || []) el('div', {class: 'ae-note'}, root, n);
      const tabs = el('div', {class: 'ae-tabs', role: 'tablist'}, root);
      const body = el('div', {class: 'ae-body'}, root);
      this.views = [];
      this.tabs = payload.views.map((v, n) => {
        const t = el('button', {class: 'ae-tab', id: `${uid}-tab${n}`, type: 'button',
                                role: 'tab'}, tabs, v.name);
        t.addEventListener('click', () => this.show(n));
        return t;
      });
      this.make = (n) => {
        const v = payload.views[n];
        const cls = v.kind === 'image' ? ImageView : TokenView;
        return new cls(v, `${uid}-v${n}`, body);
      };
      // A link to PAGE#ID-tabN opens that tab (the README's screenshot commands use it).
      const hash = location.hash.startsWith(`#${uid}-tab`) ? location.hash : '';
      const linked = /-tab(\d+)$/.exec(hash);
      const first = linked ? Math.min(Number(linked[1]), payload.views.length - 1) : 0;
      if (payload.views.length) this.show(first);
      else el('div', {class: 'ae-note'}, root, 'No attention to show.');
    }

    show(n) {
      if (!this.views[n]) this.views[n] = this.make(n);
      this.views.forEach((v, i) => { if (v) v.panel.hidden = i !== n; });
      this.tabs.forEach((t, i) => t.classList.toggle('ae-active', i === n));
    }
  }

  window.attentionExplorers = window.attentionExplorers || {};
  for (const root of document.querySelectorAll('.attn-explorer')) {
    if (window.attentionExplorers[root.id]) continue;
    try {
      const payload = JSON.parse(document.getElementById(root.dataset.payload).textContent);
      window.attentionExplorers[root.id] = new Explorer(root, payload);
    } catch (e) {
      el('div', {class: 'ae-error'}, root, 'This explorer could not be drawn: ' + e);
      console.error(e);
    }
  }
})();
