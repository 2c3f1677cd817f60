// siyu-bot H5: one button per page posts to the JSON API with the CSRF token from the page.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var button = document.getElementById("action");
  var result = document.getElementById("result");

  function show(text, ok) {
    result.textContent = text;
    result.className = "result " + (ok ? "ok" : "err");
    result.hidden = false;
  }

  function update(me) {
    if (!me) return;
    var streak = document.getElementById("streak");
    var balance = document.getElementById("balance");
    if (streak) streak.textContent = String(me.streak);
    if (balance) balance.textContent = String(me.balance);
  }

  function finish(status, body) {
    if (status === 401) { window.location.reload(); return; }
    show(body.text || body.error || "出错了，请稍后再试", status === 200 && body.ok);
    update(body.me);
    var done = body.me && body.me.checked_in_today && button.getAttribute("data-done-label");
    if (done) {
      button.textContent = button.getAttribute("data-done-label");
      button.disabled = true;
    } else {
      button.disabled = false;
    }
  }

  if (!button) return;
  button.addEventListener("click", function () {
    button.disabled = true;
    fetch(button.getAttribute("data-action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: "{}"
    }).then(function (response) {
      return response.json().then(function (body) { finish(response.status, body); });
    }).catch(function () {
      show("网络不太好，请稍后再试", false);
      button.disabled = false;
    });
  });
})();
