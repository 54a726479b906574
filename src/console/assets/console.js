// The console's only script (served from the binary; the Content-Security-Policy allows no
// other). Parts of a page marked data-poll="URL" data-running="true" are replaced by the
// fragment at URL every second (or every data-every seconds) until the fragment says it is
// no longer running: a job's progress, the lag chart. Everything else is plain HTML forms.
"use strict";
(function () {
  function poll(el, failures) {
    failures = failures || 0;
    var every = parseInt(el.getAttribute("data-every") || "1", 10) * 1000;
    // After failures, wait longer each time (up to a minute).
    var wait = Math.min(every * Math.pow(2, failures), 60000);
    setTimeout(function () {
      if (!document.body.contains(el)) return;
      fetch(el.getAttribute("data-poll"), { credentials: "same-origin" })
        .then(function (r) {
          if (r.status === 401) {
            // The session ended: the page itself shows the login form.
            window.location.reload();
            throw new Error("signed out");
          }
          if (!r.ok) throw new Error(String(r.status));
          return r.text();
        })
        .then(function (text) {
          var t = document.createElement("template");
          t.innerHTML = text.trim();
          var fresh = t.content.firstElementChild;
          if (!fresh) return;
          el.replaceWith(fresh);
          if (fresh.getAttribute("data-running") === "true") poll(fresh, 0);
        })
        .catch(function (e) {
          if (e && e.message === "signed out") return;
          // The server went away for a moment: try again later.
          poll(el, failures + 1);
        });
    }, wait);
  }
  function start() {
    document.querySelectorAll('[data-poll][data-running="true"]').forEach(function (el) {
      poll(el, 0);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
