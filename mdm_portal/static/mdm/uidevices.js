// The device list: "select every device on this page" and the count of selected devices.
// Without it the page still works: each checkbox is a plain form control.
(function () {
  function boxes() { return document.querySelectorAll('input[type=checkbox][name=device]'); }
  function update() {
    var all = boxes(), checked = 0;
    all.forEach(function (box) { if (box.checked) checked++; });
    var head = document.querySelector('input[data-select-page]');
    if (head) {
      head.checked = all.length > 0 && checked === all.length;
      head.indeterminate = checked > 0 && checked < all.length;
    }
    var label = document.querySelector('[data-selected-count]');
    if (label) {
      label.textContent = checked === 0 ? 'No device selected'
        : checked === 1 ? '1 device selected' : checked + ' devices selected';
    }
  }
  document.addEventListener('change', function (event) {
    var target = event.target;
    if (target.matches && target.matches('input[data-select-page]')) {
      boxes().forEach(function (box) { box.checked = target.checked; });
    }
    if (target.matches && target.matches('input[type=checkbox]')) update();
  });
  document.addEventListener('htmx:afterSwap', update);
  document.addEventListener('DOMContentLoaded', update);
})();
