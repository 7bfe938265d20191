// The Automated Device Enrollment pages: a button marked data-busy says what it is doing once
// pressed (syncing or defining a profile with Apple takes seconds) and cannot be pressed twice.
// Without it the forms still work.
(function () {
  document.addEventListener('submit', function (event) {
    var button = event.submitter;
    if (!button || !button.hasAttribute('data-busy') || event.defaultPrevented) return;
    // After the submit has read the form: a disabled button would drop out of its data.
    setTimeout(function () {
      button.disabled = true;
      button.textContent = button.getAttribute('data-busy');
    }, 0);
  });
})();
