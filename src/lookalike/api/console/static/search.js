// Search playground conveniences; the form works without this script (type the region by hand).
// Drop a photo on the drop zone, see it, and drag on it (mouse, pen or touch) to mark the region: the
// region input then holds "x1,x2,y1,y2" in pixels of the ORIGINAL photo, which is what the server expects.
(function () {
  "use strict";
  var input = document.getElementById("picture");
  var drop = document.getElementById("drop");
  var draw = document.getElementById("draw");
  var img = document.getElementById("draw-img");
  var box = document.getElementById("draw-box");
  var region = document.getElementById("region");
  var clear = document.getElementById("clear-region");
  if (!input || !drop || !draw || !img || !box || !region) return;
  document.documentElement.classList.add("js");
  if (clear) clear.hidden = false;
  img.draggable = false;
  var objectUrl = null;
  var start = null;
  var MIN_SIDE = 10; // the server refuses smaller regions

  function show(file) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    img.src = objectUrl;
    draw.hidden = false;
    region.value = ""; // a region belongs to one photo
    box.hidden = true;
  }

  function fraction(event) {
    var rect = img.getBoundingClientRect();
    var clamp = function (v) { return Math.min(1, Math.max(0, v)); };
    return { x: clamp((event.clientX - rect.left) / rect.width), y: clamp((event.clientY - rect.top) / rect.height) };
  }

  // Box corners as fractions of the picture; CSS percentages keep it in place when the preview resizes.
  function paint(x1, x2, y1, y2) {
    box.style.left = x1 * 100 + "%";
    box.style.top = y1 * 100 + "%";
    box.style.width = (x2 - x1) * 100 + "%";
    box.style.height = (y2 - y1) * 100 + "%";
    box.hidden = false;
  }

  function pixels(a, b) {
    var w = img.naturalWidth, h = img.naturalHeight;
    return [
      Math.round(Math.min(a.x, b.x) * w), Math.round(Math.max(a.x, b.x) * w),
      Math.round(Math.min(a.y, b.y) * h), Math.round(Math.max(a.y, b.y) * h)
    ];
  }

  input.addEventListener("change", function () {
    if (input.files && input.files[0]) show(input.files[0]);
  });
  drop.addEventListener("dragover", function (event) {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    drop.classList.remove("over");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) {
      input.files = files;
      show(files[0]);
    }
  });

  img.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    start = fraction(event);
    img.setPointerCapture(event.pointerId);
  });
  img.addEventListener("pointermove", function (event) {
    if (!start) return;
    var here = fraction(event);
    paint(Math.min(start.x, here.x), Math.max(start.x, here.x), Math.min(start.y, here.y), Math.max(start.y, here.y));
  });
  img.addEventListener("pointerup", function (event) {
    if (!start) return;
    var p = pixels(start, fraction(event));
    start = null;
    if (p[1] - p[0] < MIN_SIDE || p[3] - p[2] < MIN_SIDE) {
      box.hidden = !region.value;
      return; // a click, not a drag: keep what was there
    }
    region.value = p.join(",");
    paintFromInput();
  });

  // Typed regions are drawn too, so the box always shows what will be sent.
  function paintFromInput() {
    var m = /^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$/.exec(region.value);
    var w = img.naturalWidth, h = img.naturalHeight;
    if (!m || !w || !h) { box.hidden = true; return; }
    var x1 = +m[1] / w, x2 = +m[2] / w, y1 = +m[3] / h, y2 = +m[4] / h;
    if (x2 <= x1 || y2 <= y1) { box.hidden = true; return; }
    paint(Math.min(x1, 1), Math.min(x2, 1), Math.min(y1, 1), Math.min(y2, 1));
  }
  region.addEventListener("input", paintFromInput);
  img.addEventListener("load", paintFromInput);
  if (clear) {
    clear.addEventListener("click", function () {
      region.value = "";
      box.hidden = true;
      region.focus();
    });
  }
})();
