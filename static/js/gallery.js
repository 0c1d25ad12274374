// The gallery and the image view: selection for bulk actions, and keyboard navigation between images.
// Everything works without this file (plain forms and links); it only makes it quicker.
(function () {
  "use strict";

  var lastClicked = null;

  function checkboxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input[type=checkbox][form=bulk-form][name=images]"));
  }

  function refreshSelection() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    form.classList.add("is-enhanced");
    var boxes = checkboxes();
    var selected = 0;
    boxes.forEach(function (box) {
      var tile = box.closest(".tile");
      if (tile) tile.classList.toggle("is-selected", box.checked);
      if (box.checked) selected += 1;
    });
    form.querySelectorAll("[data-selected-count]").forEach(function (element) {
      element.textContent = String(selected);
    });
    form.classList.toggle("has-selection", selected > 0);
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      button.disabled = selected === 0;
    });
    var all = form.querySelector("[data-select-page]");
    if (all) all.disabled = boxes.length === 0 || selected === boxes.length;
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    if (target.closest("[data-select-page]")) {
      checkboxes().forEach(function (box) { box.checked = true; });
      refreshSelection();
      return;
    }
    if (target.closest("[data-select-none]")) {
      checkboxes().forEach(function (box) { box.checked = false; });
      refreshSelection();
      return;
    }
    // Shift-click selects the range since the previous click, as in a file manager.
    if (target.matches("input[type=checkbox][form=bulk-form][name=images]")) {
      var boxes = checkboxes();
      if (event.shiftKey && lastClicked && boxes.indexOf(lastClicked) !== -1) {
        var from = boxes.indexOf(lastClicked);
        var to = boxes.indexOf(target);
        var low = Math.min(from, to);
        var high = Math.max(from, to);
        for (var index = low; index <= high; index += 1) boxes[index].checked = target.checked;
      }
      lastClicked = target;
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target instanceof Element && event.target.matches("input[form=bulk-form]")) refreshSelection();
  });

  function measureHeader() {
    var header = document.querySelector(".site-header");
    if (header) document.documentElement.style.setProperty("--header-height", header.offsetHeight + "px");
  }
  window.addEventListener("resize", measureHeader);
  document.addEventListener("DOMContentLoaded", measureHeader);

  // New tiles (the next page, or new filters) arrive through htmx.
  document.addEventListener("htmx:afterSettle", refreshSelection);
  document.addEventListener("studio:live-removed", refreshSelection);

  // Images made meanwhile arrive over the page's websocket in the hidden #live-tiles. The first page of the
  // whole gallery (data-live) takes them at its top, newest first, skipping any it shows already; a page
  // narrowed by filters, or an older page, says new images exist instead (they may not match, and the
  // cursor of the next page stays as it was).
  document.body.addEventListener("htmx:wsAfterMessage", function () {
    var arrived = document.getElementById("live-tiles");
    if (!arrived || !arrived.children.length) return;
    var tiles = document.getElementById("gallery-tiles");
    var fresh = Array.prototype.slice.call(arrived.children).filter(function (tile) {
      return !tiles || !tile.id || !tiles.querySelector("#" + CSS.escape(tile.id));
    });
    if (tiles && tiles.hasAttribute("data-live")) {
      fresh.reverse().forEach(function (tile) { tiles.prepend(tile); });
      refreshSelection();
    } else if (fresh.length) {
      var notice = document.getElementById("live-notice");
      if (notice) notice.hidden = false;
    }
    arrived.replaceChildren();
  });
  document.addEventListener("DOMContentLoaded", refreshSelection);

  // The image view: arrow keys go to the newer and older image, unless the user is typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName))) return;
    var direction = { ArrowLeft: "newer", ArrowRight: "older" }[event.key];
    if (!direction) return;
    var link = document.querySelector("a[data-nav=" + direction + "]");
    if (link) {
      event.preventDefault();
      window.location.assign(link.href);
    }
  });
})();
