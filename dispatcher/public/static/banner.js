/*
 * Clarion's campus alert banner. Paste one tag into a site's template:
 *
 *   <script src="https://alerts.example.edu/public/banner.js" defer></script>
 *
 * Optional attributes on that tag:
 *   data-poll-seconds="15"   how often to look for alerts (at least 2; default 15)
 *   data-lang="es"           the banner's language (default: the page's <html lang>)
 *   data-feed="URL"          another alerts.json (default: beside this script)
 *
 * It defines no globals, touches nothing of the host page but one element it adds at the top
 * of <body>, keeps its styles inside a shadow root, and says nothing when Clarion cannot be
 * reached: a site must never break because of its alert banner.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !window.fetch || !window.URL || !document.documentElement.attachShadow) {
    return;
  }

  var WORDS = {
    en: {
      label: { emergency: "Emergency", timely_warning: "Timely warning",
               advisory: "Advisory" },
      drill: "DRILL: this is an exercise, not a real emergency.",
      test: "TEST of the alert system: not a real emergency.",
      more: "More information",
      dismiss: "Dismiss alert",
      region: "Campus alert",
      whatToDo: "What to do:",
      others: function (n) { return n === 1 ? "1 more alert" : n + " more alerts"; }
    },
    es: {
      label: { emergency: "Emergencia", timely_warning: "Aviso oportuno",
               advisory: "Aviso" },
      drill: "SIMULACRO: es un ejercicio, no una emergencia real.",
      test: "PRUEBA del sistema de alertas: no es una emergencia real.",
      more: "Más información",
      dismiss: "Cerrar alerta",
      region: "Alerta del campus",
      whatToDo: "Qué hacer:",
      others: function (n) { return n === 1 ? "1 alerta más" : n + " alertas más"; }
    }
  };

  var CSS = [
    ":host { all: initial; display: block; position: relative; z-index: 2147483647; }",
    ".banner { box-sizing: border-box; display: flex; gap: 0.75rem; align-items: flex-start;",
    "  padding: 0.75rem 1rem; margin: 0; font: 16px/1.4 system-ui, -apple-system, 'Segoe UI',",
    "  Roboto, Arial, sans-serif; color: #ffffff; background: #1d4f91;",
    "  border-bottom: 4px solid #0b0c0c; text-align: left; }",
    ".severe, .extreme { background: #b10e1e; }",
    ".moderate { background: #8a4500; }",
    ".minor { background: #1d4f91; }",
    ".drill { background: #4c2c92; border: 4px dashed #ffffff; }",
    ".body { flex: 1 1 auto; min-width: 0; overflow-wrap: anywhere; }",
    ".body p { margin: 0.2rem 0; }",
    ".kind { font-weight: 700; text-transform: uppercase; letter-spacing: 0.03em;",
    "  font-size: 0.8rem; }",
    ".drill-label { font-weight: 700; }",
    ".headline { font-weight: 700; font-size: 1.1rem; }",
    "a { color: #ffffff; font-weight: 700; text-decoration: underline; }",
    "a:focus, button:focus { outline: 3px solid #ffbf47; outline-offset: 2px; }",
    "button { flex: 0 0 auto; font: inherit; font-size: 1.25rem; line-height: 1;",
    "  color: #ffffff; background: transparent; border: 2px solid #ffffff;",
    "  border-radius: 4px; padding: 0.2rem 0.55rem; cursor: pointer; }",
    "button:hover { background: rgba(255, 255, 255, 0.2); }"
  ].join("\n");

  var source = new URL(script.src, document.baseURI);
  var feedUrl = script.getAttribute("data-feed") || new URL("alerts.json", source).href;
  var seconds = parseFloat(script.getAttribute("data-poll-seconds"));
  var pollMs = Math.max(2, isFinite(seconds) ? seconds : 15) * 1000;
  var language = (script.getAttribute("data-lang") || document.documentElement.lang || "en")
    .slice(0, 2).toLowerCase();
  var words = WORDS[language] || WORDS.en;

  var host = null;
  var root = null;
  var shownKey = "";
  var dismissedKey = "";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function mount() {
    if (host && host.isConnected) { return; }
    host = document.createElement("clarion-alert-banner");
    host.setAttribute("data-clarion", "banner");
    root = host.attachShadow({ mode: "open" });
    // A constructed sheet is not inline style, so a host page's strict CSP allows it.
    if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet &&
        CSSStyleSheet.prototype.replaceSync) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(el("style", "", CSS));
    }
    document.body.insertBefore(host, document.body.firstChild);
  }

  function unmount() {
    if (host && host.parentNode) { host.parentNode.removeChild(host); }
    host = null;
    root = null;
    shownKey = "";
  }

  function words_of(alert) {
    var t = (alert.translations || {})[language];
    if (language !== alert.language && t) { return t; }
    return alert;
  }

  function render(feed, key) {
    var alerts = feed.alerts;
    var first = alerts[0];
    var text = words_of(first);
    mount();
    while (root.lastChild && root.lastChild.nodeName !== "STYLE") {
      root.removeChild(root.lastChild);
    }
    var box = el("section", "banner " + (first.drill ? "drill" : String(first.severity)));
    box.setAttribute("aria-label", words.region);
    box.setAttribute("data-alert-id", String(first.id));
    box.setAttribute("data-drill", first.drill ? "true" : "false");
    var body = el("div", "body");
    // role=alert on the part that carries the news, so screen readers announce it once.
    var news = el("div", "news");
    news.setAttribute("role", "alert");
    if (first.drill) {
      news.appendChild(el("p", "drill-label", first.mode === "test" ? words.test : words.drill));
    }
    news.appendChild(el("p", "kind", words.label[first.kind] || String(first.kind)));
    news.appendChild(el("p", "headline", text.headline));
    if (text.text && text.text !== text.headline) {
      news.appendChild(el("p", "text", text.text));
    }
    if (text.instruction) {
      news.appendChild(el("p", "instruction", words.whatToDo + " " + text.instruction));
    }
    body.appendChild(news);
    var links = el("p", "links");
    if (alerts.length > 1) {
      links.appendChild(document.createTextNode(words.others(alerts.length - 1) + " · "));
    }
    var page = String(feed.page || new URL("./", source).href);
    if (/^https?:/i.test(page)) {
      var link = el("a", "", words.more);
      link.href = page + (language === "es" ? (page.indexOf("?") < 0 ? "?" : "&") + "lang=es" : "");
      links.appendChild(link);
    }
    body.appendChild(links);
    box.appendChild(body);
    var close = el("button", "", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", words.dismiss);
    close.addEventListener("click", function () {
      dismissedKey = key;
      unmount();
    });
    box.appendChild(close);
    root.appendChild(box);
    shownKey = key;
  }

  function show(feed) {
    var alerts = feed && feed.alerts;
    if (!alerts || !alerts.length) {
      // All clear, or nothing active: the banner goes away.
      dismissedKey = "";
      unmount();
      return;
    }
    var key = alerts.map(function (a) { return a.id; }).join(" ") + "|" +
      words_of(alerts[0]).text;
    if (key === dismissedKey || (key === shownKey && host && host.isConnected)) { return; }
    render(feed, key);
  }

  function poll() {
    // no-cache: revalidate each time with the ETag; the answer is usually a 304.
    fetch(feedUrl, { cache: "no-cache", credentials: "omit", mode: "cors" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (feed) { if (feed) { show(feed); } })
      .catch(function () { /* Clarion unreachable: keep what is shown, try again later. */ })
      .then(function () { window.setTimeout(poll, pollMs); });
  }

  function begin() {
    try {
      poll();
    } catch (ignored) {
      // Never let the banner's own fault reach the host page.
    }
  }

  if (document.body) {
    begin();
  } else {
    document.addEventListener("DOMContentLoaded", begin);
  }
})();
