// SmartPost gateway: small vanilla helpers (drag-and-drop ordering, cross-property toggle, split-rule fields,
// confirmation dialogs). No build step, no external code besides the vendored htmx. The pages carry no inline
// script or event handler (the Content-Security-Policy forbids them): behaviour hangs on data-* attributes here.
(function () {
  "use strict";

  function csrfToken() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  // "Liegenschaftsübergreifender Versand" disables the property selector.
  function initCrossProperty() {
    var box = document.getElementById("cross-property");
    var select = document.getElementById("property-select");
    if (!box || !select) return;
    var sync = function () {
      select.disabled = box.checked;
      if (box.checked) select.value = "";
    };
    box.addEventListener("change", sync);
    sync();
  }

  // The help texts of the split rules travel as JSON in <meta name="sp-rule-help"> (data, never code).
  function ruleHelp() {
    var meta = document.querySelector("meta[name=sp-rule-help]");
    if (!meta) return {};
    try {
      return JSON.parse(meta.getAttribute("content") || "{}");
    } catch (e) {
      return {};
    }
  }

  // Show only the parameters of the chosen split rule.
  function initRules(root) {
    root.querySelectorAll("[data-rule]").forEach(function (rule) {
      var select = rule.querySelector("[data-rule-select]");
      var help = rule.querySelector("[data-rule-help]");
      var helps = ruleHelp();
      var sync = function () {
        rule.querySelectorAll("[data-for]").forEach(function (label) {
          label.hidden = label.getAttribute("data-for") !== select.value;
        });
        if (help && helps[select.value]) help.textContent = helps[select.value];
      };
      select.addEventListener("change", sync);
      sync();
    });
  }

  // Drag and drop ordering of the uploaded documents; the new order is saved at once.
  function initSortable() {
    var list = document.querySelector("[data-sortable]");
    if (!list) return;
    var dragged = null;
    list.addEventListener("dragstart", function (e) {
      dragged = e.target.closest("li.document");
      if (!dragged) return;
      dragged.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", dragged.getAttribute("data-id"));
    });
    list.addEventListener("dragover", function (e) {
      var over = e.target.closest("li.document");
      if (!dragged || !over || over === dragged) return;
      e.preventDefault();
      var box = over.getBoundingClientRect();
      var after = e.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? over.nextSibling : over);
    });
    list.addEventListener("drop", function (e) { e.preventDefault(); });
    list.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      saveOrder(list);
    });
  }

  function saveOrder(list) {
    var ids = Array.prototype.map.call(list.querySelectorAll("li.document"), function (li) {
      return li.getAttribute("data-id");
    });
    var body = new URLSearchParams({ order: ids.join(","), csrf_token: csrfToken() });
    fetch(list.getAttribute("data-reorder-url"), {
      method: "POST",
      body: body,
      headers: { "HX-Request": "true", "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    }).then(function (response) {
      var target = response.headers.get("HX-Redirect");
      window.location.href = target || window.location.pathname;
    });
  }

  // The revoke dialog takes recipient, place and paper status from the button's data attributes, as text.
  function openRevoke(button) {
    var dialog = document.getElementById("revoke-dialog");
    if (!dialog) return;
    dialog.querySelector("input[name=unit_id]").value = button.dataset.unitId || "";
    dialog.querySelector("input[name=item_id]").value = button.dataset.itemId || "";
    dialog.querySelector("[data-revoke-recipient]").textContent = button.dataset.recipient || "";
    dialog.querySelector("[data-revoke-place]").textContent = button.dataset.place || "";
    dialog.querySelector("[data-revoke-paper]").textContent = button.dataset.paper || "";
    dialog.showModal();
  }

  // One delegated listener for every button of the page, also for content htmx swaps in later.
  function onClick(e) {
    var target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    var opener = target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog) dialog.showModal();
      return;
    }
    var closer = target.closest("[data-close-dialog]");
    if (closer) {
      var own = closer.closest("dialog");
      if (own) own.close();
      return;
    }
    var revoke = target.closest("[data-revoke-open]");
    if (revoke) {
      openRevoke(revoke);
      return;
    }
    var reassign = target.closest("[data-open-reassign]");
    if (reassign) {
      var article = reassign.closest("article");
      var details = article ? article.querySelector("details.reassign") : null;
      if (details) details.open = true;
    }
  }

  // A <select data-autosubmit> sends its form when the choice changes (e.g. the property filter).
  function onChange(e) {
    var target = e.target instanceof Element ? e.target : null;
    if (target && target.matches("select[data-autosubmit]") && target.form) target.form.submit();
  }

  document.addEventListener("click", onClick);
  document.addEventListener("change", onChange);

  document.addEventListener("DOMContentLoaded", function () {
    initCrossProperty();
    initRules(document);
    initSortable();
  });
})();
