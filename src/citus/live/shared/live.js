(function () {
  "use strict";
  // citus live reload: follows the development server's event stream.
  // Settings come from this element's data- attributes (see citus/live).
  var me = document.currentScript;
  if (!me || !window.fetch) return;
  var cfg = me.dataset;
  var token = {};
  window.__citusLive = token;
  var method = (cfg.method || "GET").toUpperCase();
  var scrollKey = "citus-live-scroll " + location.href;
  var delay = 0;
  var controller = null;
  var timer = 0;

  function active() {
    return window.__citusLive === token;
  }

  function restoreScroll() {
    var saved = null;
    try {
      saved = sessionStorage.getItem(scrollKey);
      sessionStorage.removeItem(scrollKey);
    } catch (e) {}
    if (!saved) return;
    var xy = saved.split(",");
    var go = function () { window.scrollTo(+xy[0] || 0, +xy[1] || 0); };
    if (document.readyState === "complete") go();
    else window.addEventListener("load", go);
  }

  function reloadPage() {
    if (method !== "GET" && method !== "HEAD") {
      offerRepeat();
      return;
    }
    try {
      sessionStorage.setItem(scrollKey, window.scrollX + "," + window.scrollY);
    } catch (e) {}
    stop();
    location.reload();
  }

  function offerRepeat() {
    if (document.getElementById("citus-live-repeat")) return;
    var bar = document.createElement("div");
    bar.id = "citus-live-repeat";
    bar.setAttribute("role", "status");
    // Property by property (CSSOM): allowed under any style-src.
    var style = {
      position: "fixed", zIndex: "2147483647", right: "1em", bottom: "1em",
      padding: ".6em 1em", background: "#222", color: "#fff",
      font: "14px system-ui, sans-serif", borderRadius: "6px"
    };
    for (var key in style) bar.style[key] = style[key];
    var text = document.createElement("span");
    text.textContent = "The server reloaded. ";
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Repeat " + method + " request";
    if (cfg.body === undefined) {
      // Too big to keep in the page (see MAX_REPEAT_BODY), or streamed.
      button.disabled = true;
      text.textContent = "The server reloaded. citus did not keep this " +
        "request's body (over 1 MiB, or streamed): send it again yourself. ";
    }
    button.addEventListener("click", repeat);
    bar.appendChild(text);
    bar.appendChild(button);
    (document.body || document.documentElement).appendChild(bar);
  }

  function bodyBytes() {
    return cfg.body ? atob(cfg.body) : "";
  }

  function utf8(binary) {
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // The fields of a form body, or null when it is not one a form can send.
  function formFields() {
    var type = (cfg.type || "").toLowerCase();
    var raw = bodyBytes();
    var fields = [];
    if (type.indexOf("application/x-www-form-urlencoded") === 0) {
      new URLSearchParams(new TextDecoder().decode(utf8(raw))).forEach(function (v, k) {
        fields.push([k, v]);
      });
      return { enctype: "application/x-www-form-urlencoded", fields: fields };
    }
    var match = /boundary="?([^";]+)"?/i.exec(cfg.type || "");
    if (type.indexOf("multipart/form-data") !== 0 || !match) return null;
    var parts = raw.split("--" + match[1]);
    for (var i = 1; i < parts.length; i++) {
      var part = parts[i];
      if (part.indexOf("--") === 0) break;
      var split = part.indexOf("\r\n\r\n");
      if (split < 0) continue;
      var head = part.slice(0, split);
      var value = part.slice(split + 4, part.length - 2);
      var name = /name="([^"]*)"/i.exec(head);
      if (!name) continue;
      var file = /filename="([^"]*)"/i.exec(head);
      if (file) {
        var mime = /content-type:\s*([^\r\n]+)/i.exec(head);
        fields.push([name[1], new File([utf8(value)], file[1],
          { type: mime ? mime[1] : "application/octet-stream" })]);
      } else {
        fields.push([name[1], new TextDecoder().decode(utf8(value))]);
      }
    }
    return { enctype: "multipart/form-data", fields: fields };
  }

  function repeat() {
    var form = method === "POST" ? formFields() : null;
    stop();
    if (form) {
      // A real navigation: the result is a page of its own (its policy too).
      var el = document.createElement("form");
      el.method = "post";
      el.action = location.href;
      el.enctype = form.enctype;
      el.hidden = true;
      form.fields.forEach(function (field) {
        var input = document.createElement("input");
        input.name = field[0];
        if (typeof field[1] === "string") {
          input.type = "hidden";
          input.value = field[1];
        } else {
          input.type = "file";
          var files = new DataTransfer();
          files.items.add(field[1]);
          input.files = files.files;
        }
        el.appendChild(input);
      });
      document.body.appendChild(el);
      el.submit();
      return;
    }
    var init = { method: method, headers: {}, credentials: "same-origin" };
    if (cfg.body) init.body = utf8(bodyBytes());
    if (cfg.type) init.headers["Content-Type"] = cfg.type;
    fetch(location.href, init).then(function (response) {
      return response.text();
    }).then(function (text) {
      document.open();
      document.write(text);
      document.close();
    }, function () {
      var bar = document.getElementById("citus-live-repeat");
      if (bar) bar.firstChild.textContent = "The request failed; try again. ";
    });
  }

  function swapStyles(paths) {
    // A link already being replaced is left to its replacement: saves that
    // come faster than a stylesheet loads must not leave copies behind.
    var links = Array.prototype.slice.call(
      document.querySelectorAll('link[rel~="stylesheet"][href]')
    ).filter(function (link) { return !link.citusReplaced; });
    var local = links.filter(function (link) {
      return new URL(link.href, location.href).origin === location.origin;
    });
    var matched = local.filter(function (link) {
      return paths.indexOf(new URL(link.href, location.href).pathname) >= 0;
    });
    // A changed file that no link names (an @import, a different URL):
    // fetch every local stylesheet again.
    (matched.length ? matched : local).forEach(function (link) {
      var url = new URL(link.href, location.href);
      url.searchParams.set("citus-live", Date.now().toString(36));
      var fresh = link.cloneNode(false);
      fresh.removeAttribute("integrity"); // the file changed: its hash did too
      fresh.href = url.href;
      link.citusReplaced = true;
      fresh.citusPrevious = link;
      var drop = function (node) { if (node.parentNode) node.parentNode.removeChild(node); };
      // Once loaded, it replaces every link before it in the chain: when a
      // later save's link loads first, the one it drops never loads, and
      // must not leave its own predecessor behind.
      fresh.addEventListener("load", function () {
        for (var node = link; node; node = node.citusPrevious) drop(node);
        fresh.citusPrevious = null; // nothing before it is left to drop
      });
      // Not served (deleted, renamed, an error): the old styles stay.
      fresh.addEventListener("error", function () {
        link.citusReplaced = false;
        drop(fresh);
      });
      link.parentNode.insertBefore(fresh, link.nextSibling);
    });
  }

  function handle(block) {
    var name = "message";
    var data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    var message = {};
    try { message = JSON.parse(data || "{}"); } catch (e) { return; }
    if (name === "hello") {
      delay = 0;
      token.hello = true;
    }
    if ((name === "hello" || name === "reload") && message.id && message.id !== cfg.id) {
      reloadPage();
    } else if (name === "css") {
      swapStyles(message.paths || []);
    }
  }

  function connect() {
    if (!active()) return;
    controller = new AbortController();
    fetch(cfg.url, {
      cache: "no-store",
      headers: { Accept: "text/event-stream" },
      signal: controller.signal
    }).then(function (response) {
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var pump = function () {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          var blocks = buffer.split("\n\n");
          buffer = blocks.pop();
          blocks.forEach(function (block) {
            if (block.indexOf("event: hello") === 0) lastHello = block;
            handle(block);
            if (channel) channel.postMessage(block);
          });
          return pump();
        });
      };
      return pump();
    }).then(function () { later(false); }, function () { later(true); });
  }

  function later(failed) {
    if (!active()) return;
    // A stream that said hello and then ended (this server is reloading) is
    // asked for again at once; one that ended without a word waits 30 ms,
    // then longer each time, and a failed connection (the server is down)
    // 100 ms, then longer each time, up to 5 s: a few console errors at most.
    var hello = delay === 0;
    delay = failed || !hello ? Math.min(Math.max(delay * 2, failed ? 100 : 30), 5000) : 1;
    timer = setTimeout(connect, hello && !failed ? 0 : delay);
  }

  function stop() {
    clearTimeout(timer);
    if (controller) controller.abort();
    if (release) release();
    release = null;
    lastHello = null;
    if (window.__citusLive === token) window.__citusLive = null;
  }

  // One stream per browser, not per tab: browsers open at most six
  // connections to a server, and a stream in every tab would leave a
  // seventh tab waiting for ever. The tab that holds the lock follows the
  // stream and passes every event on to the others; when it goes away,
  // another one takes the lock. (Without Web Locks, outside a secure
  // context, every tab follows its own stream.)
  var lockName = "citus-live " + cfg.url;
  var channel = window.BroadcastChannel ? new BroadcastChannel(lockName) : null;
  var release = null;
  var lastHello = null;
  if (channel) {
    channel.onmessage = function (event) {
      if (!active() || typeof event.data !== "string") return;
      if (event.data === "?") {
        // A tab that just opened asks what the stream said first.
        if (release && lastHello) channel.postMessage(lastHello);
      } else {
        handle(event.data);
      }
    };
  }

  function start() {
    if (!(navigator.locks && channel)) {
      connect();
      return;
    }
    channel.postMessage("?");
    navigator.locks.request(lockName, function () {
      if (!active()) return null;
      return new Promise(function (resolve) {
        release = resolve;
        connect();
      });
    });
  }

  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !active()) {
      window.__citusLive = token;
      start();
    }
  });
  restoreScroll();
  start();
})();
