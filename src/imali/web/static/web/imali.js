// Small progressive enhancements; every screen works without this file.
(function () {
  "use strict";

  // "Tick all" / "Clear all" for a group of checkboxes (role rights).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-check-all],[data-check-none]");
    if (!button) return;
    var name = button.getAttribute("data-check-all") || button.getAttribute("data-check-none");
    var checked = button.hasAttribute("data-check-all");
    var form = button.closest("form");
    form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) { box.checked = checked; });
  });

  // A select with data-follows="<field>" offers only the options whose data-<field> matches the
  // chosen value of that field (paypoints of the chosen employer). The server checks it anyway.
  function follow(select) {
    var leaderName = select.getAttribute("data-follows");
    var leader = select.form && select.form.elements[leaderName];
    if (!leader) return;
    function apply() {
      var chosen = leader.value;
      Array.prototype.forEach.call(select.options, function (option) {
        var owner = option.getAttribute("data-" + leaderName);
        var visible = !owner || owner === chosen;
        option.hidden = !visible;
        option.disabled = !visible;
        if (!visible && option.selected) select.value = "";
      });
    }
    leader.addEventListener("change", apply);
    apply();
  }
  document.querySelectorAll("select[data-follows]").forEach(follow);
})();

// The navigation menus: one open at a time; Escape or a click elsewhere closes them.
(function () {
  "use strict";
  var menus = document.querySelectorAll("details.navmenu");
  function closeAll(except) {
    menus.forEach(function (menu) { if (menu !== except) menu.open = false; });
  }
  menus.forEach(function (menu) {
    menu.addEventListener("toggle", function () { if (menu.open) closeAll(menu); });
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest("details.navmenu")) closeAll(null);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details.navmenu[open]");
    if (!open) return;
    open.open = false;
    open.querySelector("summary").focus();
  });
})();

// A form sent by htmx that the server refuses answers 400 with the form and its errors; htmx swaps
// only 2xx answers by default, so the errors would not show. Swap those (not a poll's GET: a poll
// answered 400 asked for something our pages never ask, and keeps what it shows).
document.addEventListener("htmx:beforeSwap", function (event) {
  var detail = event.detail;
  var verb = detail.requestConfig && detail.requestConfig.verb;
  if (detail.xhr && detail.xhr.status === 400 && verb && verb.toLowerCase() !== "get") {
    detail.shouldSwap = true;
    detail.isError = false;
  }
});
