/* citus debugger: the error page's behaviour. No framework, no network but
 * the debugger's own endpoints; text from the server is inserted as text. */
(function () {
  "use strict";
  var body = document.body;
  var prefix = body.getAttribute("data-prefix");
  var secret = body.getAttribute("data-secret");
  var tracebackId = body.getAttribute("data-traceback");
  var consoleOn = body.getAttribute("data-console") === "on";
  var unlocked = false;
  var afterUnlock = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function post(path, fields) {
    var params = new URLSearchParams();
    params.set("s", secret);
    Object.keys(fields).forEach(function (key) { params.set(key, fields[key]); });
    return fetch(prefix + path, {
      method: "POST",
      body: params,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { error: "The debugger answered " + response.status + "." };
      }).then(function (data) { data.httpStatus = response.status; return data; });
    }, function () {
      return { error: "The server did not answer (was it stopped or restarted?)." };
    });
  }

  /* --- copy and fold ------------------------------------------------------ */
  var copyStatus = document.getElementById("copy-status");
  function copyButton(buttonId, textId, what) {
    var button = document.getElementById(buttonId);
    var source = document.getElementById(textId);
    if (!button || !source) { return; }
    button.addEventListener("click", function () {
      copyStatus.textContent = "";
      function done(ok) {
        copyStatus.textContent = ok ? "Copied." : "Select the " + what + " below and copy it.";
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(function () { done(true); },
          function () { done(false); });
      } else {
        source.closest("details").open = true;
        source.select();
        done(document.execCommand("copy"));
      }
    });
  }
  copyButton("copy-traceback", "plain-traceback", "plain traceback");
  copyButton("copy-markdown", "markdown-text", "Markdown");
  var toggle = document.getElementById("toggle-library");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var groups = document.querySelectorAll(".library-group > details");
      var open = toggle.getAttribute("aria-pressed") !== "true";
      groups.forEach(function (group) { group.open = open; });
      toggle.setAttribute("aria-pressed", open ? "true" : "false");
      toggle.textContent = open ? "Hide library frames" : "Show library frames";
    });
  }

  /* --- the PIN ------------------------------------------------------------ */
  var pinBox = document.getElementById("pin-box");

  function showPinBox(message) {
    pinBox.textContent = "";
    pinBox.hidden = false;
    var form = el("form", "pin-form");
    var label = el("label", null, "Console locked. Enter the PIN printed in the server's terminal: ");
    var input = el("input");
    input.type = "password";
    input.name = "pin";
    input.autocomplete = "off";
    input.id = "pin-input";
    label.appendChild(input);
    var submit = el("button", null, "Unlock");
    submit.type = "submit";
    var note = el("p", "pin-message", message || "");
    form.appendChild(label);
    form.appendChild(submit);
    pinBox.appendChild(form);
    pinBox.appendChild(note);
    input.focus();
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit.disabled = true;
      post("/pin", { pin: input.value }).then(function (data) {
        submit.disabled = false;
        if (data.ok) {
          unlocked = true;
          pinBox.hidden = true;
          pinBox.textContent = "";
          if (afterUnlock) { var next = afterUnlock; afterUnlock = null; next(); }
        } else {
          note.textContent = data.error || "Unlocking failed.";
          input.value = "";
          input.focus();
        }
      });
    });
  }

  function whenUnlocked(next) {
    if (unlocked) { next(); return; }
    post("/status", {}).then(function (data) {
      if (data.unlocked) { unlocked = true; next(); return; }
      if (data.error || data.reason) {
        pinBox.hidden = false;
        pinBox.textContent = "";
        pinBox.appendChild(el("p", "pin-message", data.reason || data.error));
        return;
      }
      afterUnlock = next;
      showPinBox(data.locked_out ? "Unlocking is refused for now: too many wrong PINs." : "");
    });
  }

  /* --- consoles ----------------------------------------------------------- */
  function openConsole(holder, frameId) {
    if (holder.getAttribute("data-ready") === "1") {
      holder.hidden = !holder.hidden;
      if (!holder.hidden) { holder.querySelector("textarea").focus(); }
      return;
    }
    holder.setAttribute("data-ready", "1");
    holder.hidden = false;
    var output = el("pre", "output");
    output.setAttribute("aria-live", "polite");
    var line = el("div", "input-line");
    var prompt = el("span", "prompt", ">>> ");
    var input = el("textarea", "input");
    input.rows = 1;
    input.spellcheck = false;
    input.setAttribute("aria-label", "Python input");
    input.setAttribute("autocomplete", "off");
    line.appendChild(prompt);
    line.appendChild(input);
    holder.appendChild(output);
    holder.appendChild(line);
    output.appendChild(el("span", "hint",
      "Python in this frame's namespace. dump(obj) inspects an object; dump() lists the variables.\n"));
    var history = [];
    var position = 0;

    function send() {
      var command = input.value;
      history.push(command);
      position = history.length;
      output.appendChild(el("span", "echo", prompt.textContent + command + "\n"));
      input.value = "";
      input.disabled = true;
      post("/eval", { tb: tracebackId, frame: frameId, cmd: command }).then(function (data) {
        input.disabled = false;
        if (data.locked) {
          unlocked = false;
          afterUnlock = function () { input.focus(); };
          showPinBox(data.error);
        } else if (data.error) {
          output.appendChild(el("span", "error", data.error + "\n"));
        } else {
          if (data.output) { output.appendChild(el("span", "result", data.output)); }
          prompt.textContent = data.prompt;
        }
        output.scrollTop = output.scrollHeight;
        input.focus();
      });
    }

    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        send();
      } else if (event.key === "ArrowUp" && input.value.indexOf("\n") === -1 && position > 0) {
        position -= 1;
        input.value = history[position];
        event.preventDefault();
      } else if (event.key === "ArrowDown" && input.value.indexOf("\n") === -1) {
        position = Math.min(history.length, position + 1);
        input.value = position < history.length ? history[position] : "";
        event.preventDefault();
      }
    });
    input.focus();
  }

  if (consoleOn) {
    document.querySelectorAll(".open-console").forEach(function (button) {
      button.addEventListener("click", function () {
        var frame = button.closest(".frame");
        var holder = frame.querySelector(".console");
        var frameId = button.getAttribute("data-frame");
        whenUnlocked(function () { openConsole(holder, frameId); });
      });
    });
    if (body.getAttribute("data-standalone") === "1") {
      var holder = document.querySelector(".standalone .console");
      whenUnlocked(function () { openConsole(holder, "console"); });
    }
  }
})();
