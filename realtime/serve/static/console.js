// rtv console: refresh door snapshots; ask before destructive forms. No inline script anywhere (CSP).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("img[data-refresh]").forEach(function (img) {
    var base = img.getAttribute("src");
    var every = parseInt(img.getAttribute("data-refresh"), 10) || 1000;
    setInterval(function () { img.src = base + "?t=" + Date.now(); }, every);
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
});
