// Small progressive enhancements; every screen works without this file.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-check-all],[data-check-none]");
    if (!button) return;
    var name = button.getAttribute("data-check-all") || button.getAttribute("data-check-none");
    var checked = button.hasAttribute("data-check-all");
    var form = button.closest("form");
    form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) { box.checked = checked; });
  });
})();
