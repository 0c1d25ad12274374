// Mask painting: choose the image to edit (an upload, a gallery pick, or /?edit=<image id>), paint the part
// to change, and the composer sends a PNG mask of the image's exact pixel size, transparent where painted
// (OpenAI's convention: transparent = edit, opaque = keep). The image goes first among the references.
(function () {
  "use strict";

  var ACCEPTED_TYPES = ["image/png", "image/jpeg", "image/webp"];
  var PAINT = "#ff3d7f"; // what paint looks like; the mask only cares whether a pixel is painted

  // Kept outside the DOM: an error answer re-renders the composer, and the painting must survive it.
  var state = {
    source: null, // {kind: "gallery", id, url} or {kind: "file", file, url}
    ops: [], // what was painted, replayed to redraw: undo drops the last one
    tool: "brush",
    size: 40,
    version: 0, // bumped on every change; the mask file is made again when it moved on
    exportedVersion: -1,
  };
  var drawing = null; // the stroke under the pointer

  function composer() {
    return document.getElementById("composer");
  }

  function part(form, name) {
    return form.querySelector("[data-" + name + "]");
  }

  function setInputFiles(input, list) {
    var transfer = new DataTransfer();
    list.forEach(function (file) {
      transfer.items.add(file);
    });
    input.files = transfer.files;
  }

  function changed(form) {
    state.version += 1;
    form.dispatchEvent(new CustomEvent("studio:inputs-changed", { bubbles: true }));
  }

  function note(form, message) {
    var element = part(form, "mask-note");
    element.textContent = message || "";
    element.hidden = !message;
  }

  // Sources

  function useGallerySource(form, id, url) {
    if (!(state.source && state.source.kind === "gallery" && state.source.id === id)) {
      if (!roomForSource(form)) return;
      forgetSource();
      state.source = { kind: "gallery", id: id, url: url };
      state.ops = [];
    }
    var hidden = form.querySelector("input[name=source_gallery_image]");
    hidden.value = id;
    hidden.dataset.fileUrl = url;
    setInputFiles(form.querySelector("input[name=source_image]"), []);
    show(form);
  }

  function useFileSource(form, file) {
    if (file.type && ACCEPTED_TYPES.indexOf(file.type) === -1) {
      note(form, file.name + ": use a PNG, JPEG or WebP image.");
      setInputFiles(form.querySelector("input[name=source_image]"), []);
      return;
    }
    if (!roomForSource(form)) return;
    forgetSource();
    state.source = { kind: "file", file: file, url: URL.createObjectURL(file) };
    state.ops = [];
    form.querySelector("input[name=source_gallery_image]").value = "";
    setInputFiles(form.querySelector("input[name=source_image]"), [file]);
    show(form);
  }

  function roomForSource(form) {
    if (state.source || !window.StudioComposer || window.StudioComposer.room(form) > 0) return true;
    note(form, form.dataset.maxInputs + " images in all at most: remove a reference first.");
    return false;
  }

  function forgetSource() {
    if (state.source && state.source.kind === "file") URL.revokeObjectURL(state.source.url);
    state.source = null;
    state.ops = [];
  }

  function removeSource(form) {
    forgetSource();
    form.querySelector("input[name=source_gallery_image]").value = "";
    setInputFiles(form.querySelector("input[name=source_image]"), []);
    setInputFiles(form.querySelector("input[name=mask]"), []);
    setEnlarged(form, false);
    part(form, "mask-editor").hidden = true;
    part(form, "mask-choice").hidden = false;
    changed(form);
    var input = form.querySelector("input[name=source_image]");
    if (input) input.focus();
  }

  // Shows the source with the painting canvas over it, the canvas at the source's natural pixel size.
  function show(form) {
    var image = part(form, "mask-image");
    var canvas = part(form, "mask-canvas");
    note(form, "");
    part(form, "mask-choice").hidden = true;
    part(form, "mask-editor").hidden = false;
    part(form, "mask-section").open = true;
    image.onload = function () {
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      replay(canvas);
      describe(form);
    };
    image.onerror = function () {
      note(form, "This image cannot be shown: choose another one.");
      removeSource(form);
    };
    image.src = state.source.url;
    changed(form);
  }

  // Painting

  function context(canvas) {
    // Read back on every stroke (coverage) and at export: keep the pixels on the CPU side.
    return canvas.getContext("2d", { willReadFrequently: true });
  }

  function draw(ctx, op) {
    var width = ctx.canvas.width;
    var height = ctx.canvas.height;
    ctx.save();
    if (op.type === "clear") {
      ctx.clearRect(0, 0, width, height);
    } else if (op.type === "invert") {
      // XOR with a full layer: painted pixels become clear, clear ones painted (edges keep their softness).
      ctx.globalCompositeOperation = "xor";
      ctx.fillStyle = PAINT;
      ctx.fillRect(0, 0, width, height);
    } else {
      ctx.globalCompositeOperation = op.type === "erase" ? "destination-out" : "source-over";
      ctx.strokeStyle = ctx.fillStyle = PAINT;
      ctx.lineWidth = op.size;
      ctx.lineCap = ctx.lineJoin = "round";
      var points = op.points;
      ctx.beginPath();
      if (points.length === 1) {
        ctx.arc(points[0][0], points[0][1], op.size / 2, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.moveTo(points[0][0], points[0][1]);
        for (var index = 1; index < points.length; index++) ctx.lineTo(points[index][0], points[index][1]);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  function replay(canvas) {
    var ctx = context(canvas);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    state.ops.forEach(function (op) {
      draw(ctx, op);
    });
  }

  // Operations are a few numbers each, so every one is kept: undo goes back to the start.
  function record(form, op) {
    state.ops.push(op);
    changed(form);
    describe(form);
  }

  function pointFor(canvas, event) {
    var box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  }

  // The brush size is in screen pixels (what the cursor ring shows), turned into image pixels.
  function imageSize(canvas) {
    var box = canvas.getBoundingClientRect();
    return Math.max(1, (state.size * canvas.width) / Math.max(1, box.width));
  }

  function moveCursor(form, canvas, event) {
    var cursor = part(form, "mask-cursor");
    if (!cursor) return;
    var box = canvas.getBoundingClientRect();
    cursor.hidden = false;
    // CSSOM properties, not a style attribute: allowed by the Content Security Policy.
    cursor.style.width = cursor.style.height = state.size + "px";
    cursor.style.transform =
      "translate(" + (event.clientX - box.left - state.size / 2) + "px," + (event.clientY - box.top - state.size / 2) + "px)";
  }

  function bindCanvas(form) {
    var canvas = part(form, "mask-canvas");
    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || !state.source) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = {
        type: state.tool === "eraser" ? "erase" : "paint",
        size: imageSize(canvas),
        points: [pointFor(canvas, event)],
      };
      draw(context(canvas), drawing);
    });
    canvas.addEventListener("pointermove", function (event) {
      moveCursor(form, canvas, event);
      if (!drawing) return;
      var last = drawing.points[drawing.points.length - 1];
      var next = pointFor(canvas, event);
      drawing.points.push(next);
      draw(context(canvas), { type: drawing.type, size: drawing.size, points: [last, next] });
    });
    function finish() {
      if (!drawing) return;
      var stroke = drawing;
      drawing = null;
      state.ops.push(stroke);
      // Redraw from the record, so what is seen now is exactly what an undo or a re-render brings back.
      replay(canvas);
      state.ops.pop();
      record(form, stroke);
    }
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    canvas.addEventListener("pointerleave", function () {
      var cursor = part(form, "mask-cursor");
      if (cursor) cursor.hidden = true;
    });
  }

  // What share of the image is painted (fully enough to be edited), from the canvas's own pixels.
  function coverage(canvas) {
    if (!canvas.width || !canvas.height) return 0;
    var data = context(canvas).getImageData(0, 0, canvas.width, canvas.height).data;
    var painted = 0;
    for (var index = 3; index < data.length; index += 4) if (data[index] >= 128) painted += 1;
    return painted / (canvas.width * canvas.height);
  }

  function describe(form) {
    var canvas = part(form, "mask-canvas");
    var share = coverage(canvas);
    var size = canvas.width + " × " + canvas.height + " px";
    var text;
    if (!share) text = size + ". Nothing painted: the whole image may change. Paint the part to redraw.";
    else if (share >= 0.999) text = size + ". All painted: the whole image is redrawn.";
    else text = size + ". " + Math.max(1, Math.round(share * 100)) + "% painted: that part is redrawn, the rest stays.";
    part(form, "mask-status").textContent = text;
    part(form, "mask-status").dataset.painted = String(share);
  }

  function undo(form) {
    if (!state.ops.length) return;
    state.ops.pop();
    replay(part(form, "mask-canvas"));
    changed(form);
    describe(form);
  }

  function setTool(form, tool) {
    state.tool = tool;
    form.querySelectorAll("[data-mask-tool]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.maskTool === tool));
    });
  }

  function setEnlarged(form, on) {
    var editor = part(form, "mask-editor");
    var button = form.querySelector("[data-mask-action=enlarge]");
    editor.classList.toggle("is-enlarged", on);
    document.body.classList.toggle("mask-enlarged", on);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Done" : "Enlarge";
  }

  // The mask file: opaque everywhere, transparent where painted. Painted means at least half covered, so
  // the soft edge of a stroke is decided one way or the other and the mask is what the person saw.
  function exportMask(form) {
    var canvas = part(form, "mask-canvas");
    var input = form.querySelector("input[name=mask]");
    var version = state.version;
    if (!state.source || !canvas.width || !coverage(canvas)) {
      setInputFiles(input, []);
      state.exportedVersion = version;
      return Promise.resolve();
    }
    var pixels = context(canvas).getImageData(0, 0, canvas.width, canvas.height);
    var data = pixels.data;
    for (var index = 0; index < data.length; index += 4) {
      var edit = data[index + 3] >= 128;
      data[index] = data[index + 1] = data[index + 2] = 0;
      data[index + 3] = edit ? 0 : 255;
    }
    var out = document.createElement("canvas");
    out.width = canvas.width;
    out.height = canvas.height;
    out.getContext("2d").putImageData(pixels, 0, 0);
    return new Promise(function (resolve) {
      out.toBlob(function (blob) {
        setInputFiles(input, [new File([blob], "mask.png", { type: "image/png" })]);
        state.exportedVersion = version;
        resolve();
      }, "image/png");
    });
  }

  // canvas.toBlob is asynchronous and htmx serialises the form as the submit event passes: hold the first
  // submit back (capture phase, before htmx sees it), make the mask, then submit again.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      // Without a source there is no mask: removing the source emptied the mask input.
      if (form.id !== "composer" || !state.source || state.exportedVersion === state.version) return;
      event.preventDefault();
      event.stopPropagation();
      var submitter = event.submitter;
      exportMask(form).then(function () {
        // A task later: a form ignores requestSubmit while its first submit event is still being fired.
        setTimeout(function () {
          if (submitter) form.requestSubmit(submitter);
          else form.requestSubmit();
        }, 0);
      });
    },
    true,
  );

  // Set up each composer (the page's, and the one an error answer puts in its place).
  function init() {
    var form = composer();
    if (!form || form.dataset.maskReady || !part(form, "mask-section")) return;
    form.dataset.maskReady = "true";
    bindCanvas(form);
    setTool(form, state.tool);
    part(form, "mask-size").value = String(state.size);
    var hidden = form.querySelector("input[name=source_gallery_image]");
    if (hidden.value && hidden.dataset.fileUrl) {
      // From /?edit=<id>, or given back by the server after an error: keep the painting if it is the same.
      var fromLink = !state.source;
      useGallerySource(form, hidden.value, hidden.dataset.fileUrl);
      if (fromLink) part(form, "mask-section").scrollIntoView({ block: "start" });
    } else if (state.source && state.source.kind === "file") {
      setInputFiles(form.querySelector("input[name=source_image]"), [state.source.file]);
      show(form);
    } else {
      forgetSource();
    }
    state.exportedVersion = -1; // the new form has an empty mask input
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);

  document.addEventListener("change", function (event) {
    var form = composer();
    if (!form || !form.contains(event.target)) return;
    if (event.target.name === "source_image" && event.target.files.length) {
      useFileSource(form, event.target.files[0]);
    }
    if (event.target.matches("[data-mask-size]")) state.size = parseInt(event.target.value, 10) || 40;
  });
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-mask-size]")) {
      state.size = parseInt(event.target.value, 10) || 40;
    }
  });

  document.addEventListener("studio:mask-source-file", function (event) {
    var form = composer();
    if (form) useFileSource(form, event.detail.file);
  });

  document.addEventListener("click", function (event) {
    var form = composer();
    if (!form || !form.contains(event.target)) return;
    var pick = event.target.closest("[data-picker-for=source] [data-pick-image]");
    if (pick) {
      useGallerySource(form, pick.dataset.pickImage, pick.dataset.fileUrl);
      pick.closest("details").open = false;
      return;
    }
    var tool = event.target.closest("[data-mask-tool]");
    if (tool) setTool(form, tool.dataset.maskTool);
    var action = event.target.closest("[data-mask-action]");
    if (!action || !state.source) return;
    var canvas = part(form, "mask-canvas");
    switch (action.dataset.maskAction) {
      case "undo":
        undo(form);
        break;
      case "clear":
      case "invert":
        var op = { type: action.dataset.maskAction };
        draw(context(canvas), op);
        record(form, op);
        break;
      case "enlarge":
        setEnlarged(form, !part(form, "mask-editor").classList.contains("is-enlarged"));
        break;
      case "remove":
        removeSource(form);
        break;
    }
  });

  document.addEventListener("keydown", function (event) {
    var form = composer();
    if (!form) return;
    var editor = part(form, "mask-editor");
    if (!editor || editor.hidden) return;
    if (event.key === "Escape" && editor.classList.contains("is-enlarged")) {
      setEnlarged(form, false);
      form.querySelector("[data-mask-action=enlarge]").focus();
    } else if (event.key === "z" && (event.ctrlKey || event.metaKey) && editor.contains(event.target)) {
      event.preventDefault();
      undo(form);
    }
  });
})();
