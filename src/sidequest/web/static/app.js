// Sidequest dashboard: small behaviours for every page. Our own code, no dependencies.
// Loaded as an external file under a nonce CSP: nothing here evaluates strings or writes
// HTML; text goes in through textContent only.
(function () {
  "use strict";

  // Ask before destructive actions: <form data-confirm="question">, or, in a form with
  // several buttons of which only some destroy, <button data-confirm="question">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) ||
      (form.getAttribute && form.getAttribute("data-confirm"));
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // <input type="checkbox" data-select-all="FORM_ID"> toggles every row box of that form.
  document.addEventListener("change", function (event) {
    var box = event.target;
    var formId = box.getAttribute && box.getAttribute("data-select-all");
    if (formId) {
      var boxes = document.querySelectorAll('input[type="checkbox"][form="' + CSS.escape(formId) + '"]');
      for (var i = 0; i < boxes.length; i++) {
        boxes[i].checked = box.checked;
      }
      return;
    }
    // <select data-autosubmit> submits its GET form when changed with the mouse. From the
    // keyboard each arrow key changes it, so there it waits for Enter or for focus to leave:
    // one ArrowDown reloading the page left 30 s or 60 s out of reach.
    if (box.hasAttribute && box.hasAttribute("data-autosubmit") && box.form) {
      if (box === keyed) {
        pending = box;
      } else {
        box.form.submit();
      }
    }
  });

  var keyed = null;    // the autosubmit select an arrow key was pressed in
  var pending = null;  // ... and that it changed, not submitted yet
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!box.hasAttribute || !box.hasAttribute("data-autosubmit")) {
      return;
    }
    if (event.key === "Enter" && pending === box && box.form) {
      event.preventDefault();
      box.form.submit();
    } else if (event.key !== "Tab") {
      keyed = box;
    }
  });
  document.addEventListener("focusout", function (event) {
    if (event.target === pending && pending.form) {
      pending.form.submit();
    }
    if (event.target === keyed) {
      keyed = pending = null;
    }
  });
  document.addEventListener("mousedown", function () {
    keyed = null;
  });
})();
