// The command page refreshes its live part (htmx) while devices answer. Keep what a person
// was doing in it: the results and the cancel panel they opened, the confirmation they ticked,
// and the keyboard focus (elements with an id).
(function () {
  var state = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var live = document.getElementById("live");
    if (!live || event.detail.target !== live) return;
    var ids = function (selector) {
      return Array.prototype.map.call(live.querySelectorAll(selector), function (el) { return el.id; });
    };
    var active = document.activeElement;
    state = {
      open: ids("details[id][open]"),
      checked: ids("input[type=checkbox][id]:checked"),
      focus: active && live.contains(active) ? (active.id || (active.closest("details[id]") || {}).id) : null,
    };
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (!state) return;
    state.open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
    state.checked.forEach(function (id) { var c = document.getElementById(id); if (c) c.checked = true; });
    var target = state.focus && document.getElementById(state.focus);
    if (target) (target.tagName === "DETAILS" ? target.querySelector("summary") : target).focus();
    state = null;
  });
})();
