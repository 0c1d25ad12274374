// The composer: prompt counter and presets, ratio guidance, and reference images chosen by file picker,
// drag and drop, paste or "Pick from gallery", shown as removable thumbnails. Mask painting is in mask.js.
// No inline scripts or styles anywhere: the Content Security Policy forbids them.
(function () {
  "use strict";

  var ACCEPTED_TYPES = ["image/png", "image/jpeg", "image/webp"];

  // The uploaded references live here, not only in the file input: a file picker replaces its selection
  // on every use (we add to it instead), and a form error re-renders the composer with empty file inputs
  // (we put them back).
  var files = [];
  var thumbnailUrls = new Map(); // File -> object URL of its thumbnail

  function composer() {
    return document.getElementById("composer");
  }

  function setInputFiles(input, list) {
    if (!input) return;
    var transfer = new DataTransfer();
    list.forEach(function (file) {
      transfer.items.add(file);
    });
    input.files = transfer.files;
  }

  function maxInputs(form) {
    return parseInt(form.dataset.maxInputs, 10) || 16;
  }

  // Every input image of the request: the mask's source (mask.js), uploads and gallery picks.
  function inputCount(form) {
    var count = files.length + form.querySelectorAll("input[name=gallery_references]").length;
    var sourceGallery = form.querySelector("input[name=source_gallery_image]");
    var sourceFile = form.querySelector("input[name=source_image]");
    if ((sourceGallery && sourceGallery.value) || (sourceFile && sourceFile.files.length)) count += 1;
    return count;
  }

  function note(form, message) {
    var element = form.querySelector("[data-reference-note]");
    if (!element) return;
    element.textContent = message || "";
    element.hidden = !message;
  }

  function updateCount(form) {
    var element = form.querySelector("[data-input-count]");
    if (!element) return;
    var count = inputCount(form);
    element.textContent = count ? count + " / " + maxInputs(form) + " images" : "";
  }

  function thumbnailUrl(file) {
    if (!thumbnailUrls.has(file)) thumbnailUrls.set(file, URL.createObjectURL(file));
    return thumbnailUrls.get(file);
  }

  function forget(file) {
    var url = thumbnailUrls.get(file);
    if (url) URL.revokeObjectURL(url);
    thumbnailUrls.delete(file);
  }

  function removeButton(label) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "thumb-remove";
    button.dataset.removeReference = "";
    button.setAttribute("aria-label", label);
    button.textContent = "×";
    return button;
  }

  // Uploads first, then gallery picks: the order the server sends them in.
  function renderFiles(form) {
    var tray = form.querySelector("[data-reference-tray]");
    if (!tray) return;
    tray.querySelectorAll("li[data-file-index]").forEach(function (item) {
      item.remove();
    });
    var firstPick = tray.firstElementChild;
    files.forEach(function (file, index) {
      var item = document.createElement("li");
      item.className = "thumb";
      item.dataset.fileIndex = String(index);
      var image = document.createElement("img");
      image.src = thumbnailUrl(file);
      image.alt = "Upload: " + file.name;
      item.append(image, removeButton("Remove reference: " + file.name));
      tray.insertBefore(item, firstPick);
    });
    setInputFiles(form.querySelector("input[name=references]"), files);
    updateCount(form);
  }

  // Checks what the browser can check (type, size, count) so a person hears at once; the server checks
  // everything again, by content.
  function acceptable(form, list, room) {
    var megabytes = parseInt(form.dataset.maxMegabytes, 10) || 50;
    var accepted = [];
    var problems = [];
    Array.prototype.forEach.call(list, function (file) {
      if (file.type && ACCEPTED_TYPES.indexOf(file.type) === -1) {
        problems.push(file.name + ": use a PNG, JPEG or WebP image.");
      } else if (file.size > megabytes * 1024 * 1024) {
        problems.push(file.name + ": larger than " + megabytes + " MB.");
      } else if (accepted.length >= room) {
        problems.push(file.name + ": " + maxInputs(form) + " images in all at most.");
      } else {
        accepted.push(file);
      }
    });
    return { files: accepted, problems: problems };
  }

  function addFiles(form, list) {
    var checked = acceptable(form, list, maxInputs(form) - inputCount(form));
    files = files.concat(checked.files);
    renderFiles(form);
    note(form, checked.problems.join(" "));
  }

  function addGalleryPick(form, button) {
    var tray = form.querySelector("[data-reference-tray]");
    var id = button.dataset.pickImage;
    if (tray.querySelector("li[data-gallery-id='" + CSS.escape(id) + "']")) {
      note(form, "That image is already a reference.");
      return;
    }
    if (inputCount(form) >= maxInputs(form)) {
      note(form, maxInputs(form) + " images in all at most: remove one first.");
      return;
    }
    var item = document.createElement("li");
    item.className = "thumb";
    item.dataset.galleryId = id;
    var image = document.createElement("img");
    image.src = button.dataset.thumbnailUrl;
    image.alt = button.querySelector("img").alt.replace(/^Add: /, "Gallery image: ");
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "gallery_references";
    hidden.value = id;
    item.append(image, hidden, removeButton("Remove reference: " + image.alt));
    tray.append(item);
    note(form, "");
    updateCount(form);
  }

  function removeReference(form, button) {
    var item = button.closest("li");
    var tray = item.parentElement;
    var next = item.nextElementSibling || item.previousElementSibling;
    if (item.dataset.fileIndex !== undefined) {
      var index = parseInt(item.dataset.fileIndex, 10);
      forget(files[index]);
      files.splice(index, 1);
      item.remove();
      renderFiles(form);
    } else {
      item.remove();
      updateCount(form);
    }
    note(form, "");
    // Keep the keyboard where it was: on the neighbouring thumbnail, else on the file input.
    var target = next && tray.contains(next) ? next.querySelector("[data-remove-reference]") : null;
    (target || form.querySelector("input[name=references]")).focus();
  }

  function updateCounter(form) {
    var prompt = form.querySelector("textarea[name=prompt]");
    var counter = form.querySelector("[data-prompt-counter]");
    if (!prompt || !counter) return;
    var max = parseInt(counter.dataset.max, 10);
    var length = Array.from(prompt.value).length; // characters, as the server counts them
    counter.textContent = length.toLocaleString("en-US") + " / " + max.toLocaleString("en-US");
    counter.classList.toggle("is-over", length > max);
  }

  function appendPhrase(form, phrase) {
    var prompt = form.querySelector("textarea[name=prompt]");
    var text = prompt.value.replace(/\s+$/, "");
    if (text.toLowerCase().indexOf(phrase.toLowerCase()) === -1) {
      if (!text) prompt.value = phrase.charAt(0).toUpperCase() + phrase.slice(1);
      else prompt.value = text + (/[.,;:!?]$/.test(text) ? " " : ", ") + phrase;
      prompt.dispatchEvent(new Event("input", { bubbles: true }));
    }
    prompt.focus();
    prompt.setSelectionRange(prompt.value.length, prompt.value.length);
  }

  // The same words as ComposerForm.ratio_guidance on the server.
  function updateGuidance(form) {
    var element = form.querySelector("#ratio-guidance");
    if (!element) return;
    var guidance = JSON.parse(element.dataset.guidance || "{}");
    var sizes = JSON.parse(element.dataset.sizes || "{}");
    var ratio = form.querySelector("[name=aspect_ratio]").value;
    var tier = form.querySelector("[name=resolution]").value;
    var text = guidance[ratio] || "";
    var blocked = ratio === "auto" && tier !== "1K";
    if (blocked) text += " Pick a ratio for " + tier + ".";
    else if (sizes[ratio] && sizes[ratio][tier]) text += " " + tier + ": " + sizes[ratio][tier] + " px.";
    element.textContent = text;
    element.classList.toggle("is-warning", blocked);
  }

  function init() {
    var form = composer();
    if (!form || form.dataset.composerReady) return;
    form.dataset.composerReady = "true";
    renderFiles(form); // puts back the uploads after an error answer re-rendered the composer
    updateCounter(form);
    updateGuidance(form);
    updateCount(form);
  }

  function containsFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") !== -1;
  }

  // An image dropped or pasted onto the mask section becomes the mask's source (mask.js listens).
  function giveToMask(form, target, file) {
    var section = target && target.closest && target.closest("[data-mask-section]");
    if (!section) return false;
    section.dispatchEvent(new CustomEvent("studio:mask-source-file", { detail: { file: file }, bubbles: true }));
    return true;
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);
  // mask.js tells when the source changes, so the count stays right.
  document.addEventListener("studio:inputs-changed", function () {
    var form = composer();
    if (form) updateCount(form);
  });

  document.addEventListener("change", function (event) {
    var form = composer();
    if (!form || !form.contains(event.target)) return;
    if (event.target.name === "references") {
      // The input now holds only the new choice: add it to what was chosen before.
      addFiles(form, Array.prototype.slice.call(event.target.files));
    }
    if (event.target.name === "aspect_ratio" || event.target.name === "resolution") updateGuidance(form);
  });

  document.addEventListener("input", function (event) {
    var form = composer();
    if (form && event.target.name === "prompt" && form.contains(event.target)) updateCounter(form);
  });

  document.addEventListener("click", function (event) {
    var form = composer();
    if (!form || !form.contains(event.target)) return;
    var preset = event.target.closest("[data-phrase]");
    if (preset) appendPhrase(form, preset.dataset.phrase);
    var remove = event.target.closest("[data-remove-reference]");
    if (remove) removeReference(form, remove);
    var pick = event.target.closest("[data-pick-image]");
    if (pick && pick.closest("[data-picker-for=reference]")) addGalleryPick(form, pick);
  });

  // Files dragged over the page: the composer takes them; anywhere else the browser would open the file
  // in place of the studio, so the drop is refused.
  document.addEventListener("dragover", function (event) {
    if (!containsFiles(event)) return;
    event.preventDefault();
    var form = composer();
    var inside = form && form.contains(event.target);
    event.dataTransfer.dropEffect = inside ? "copy" : "none";
    if (form) form.classList.toggle("is-dropping", inside);
  });
  document.addEventListener("dragleave", function (event) {
    var form = composer();
    if (form && !form.contains(event.relatedTarget)) form.classList.remove("is-dropping");
  });
  document.addEventListener("drop", function (event) {
    if (!containsFiles(event)) return;
    event.preventDefault();
    var form = composer();
    if (!form) return;
    form.classList.remove("is-dropping");
    if (!form.contains(event.target)) return;
    var dropped = event.dataTransfer.files;
    if (dropped.length && giveToMask(form, event.target, dropped[0])) return;
    addFiles(form, dropped);
  });

  // Ctrl+V of an image anywhere on the page adds it as a reference (or as the mask's source, when pasted
  // in the mask section). A paste of text is left alone.
  document.addEventListener("paste", function (event) {
    var form = composer();
    var data = event.clipboardData;
    if (!form || !data || !data.files || !data.files.length) return;
    var images = Array.prototype.filter.call(data.files, function (file) {
      return /^image\//.test(file.type);
    });
    if (!images.length) return;
    event.preventDefault();
    if (giveToMask(form, event.target, images[0])) return;
    addFiles(form, images);
  });

  // For mask.js: how many more input images fit.
  window.StudioComposer = {
    room: function (form) {
      return maxInputs(form) - inputCount(form);
    },
  };
})();
