"""The Kivy app: live stylization of a frame source with a width / resolution trade-off.

The stylized frame fills the window, the live input sits in a picture-in-picture corner (or
beside it in split view), an overlay shows FPS, model latency and the configuration. Controls:
width, resolution, backend/precision, Auto, Capture, view. Inference runs in
mobile_app.pipeline's threads; this module only draws. Import it after
`session.configure_kivy()`.
"""
import json
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
from kivy.app import App
from kivy.clock import Clock
from kivy.graphics.texture import Texture
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.spinner import Spinner
from kivy.uix.togglebutton import ToggleButton

from animeedge.runtimes.atomic import atomic_path
from animeedge.runtimes.imageio import write_image

from .auto import AutoController
from .pipeline import Config, Pipeline
from .session import AppSession

BAR = 0.09  # height of the control bar, as a fraction of the window
OVERLAY_SECONDS = 0.25  # the overlay text is re-rendered at most this often, not per frame
STALL_SECONDS = 10.0  # an unattended run whose source reports trouble for this long ends with exit 1


def _texture_from(rgb: np.ndarray, texture):
    h, w = rgb.shape[:2]
    if texture is None or tuple(texture.size) != (w, h):
        texture = Texture.create(size=(w, h), colorfmt="rgb")
        texture.flip_vertical()
    texture.blit_buffer(rgb.tobytes(), colorfmt="rgb", bufferfmt="ubyte")
    return texture


class AnimeEdgeApp(App):
    title = "animeedge"

    def __init__(self, session: AppSession, frames=None, screenshot=None, on_exit=None, **kwargs):
        super().__init__(**kwargs)
        self.session, self.frames_wanted, self.screenshot = session, frames, screenshot
        self.on_exit = on_exit or (lambda summary: None)
        self.shown, self.model_ms, self.intervals = 0, deque(maxlen=200), deque(maxlen=60)
        self.overlay_at = 0.0
        self.first_shown = self.last_shown = self.current_frame = self.current_config = None
        self.started = time.perf_counter()
        self.pipeline = None
        self.auto: AutoController | None = None
        self.textures = {}
        self.captures = []
        self.summary = None

    # ---- layout -------------------------------------------------------------------------
    def build(self):
        root = FloatLayout()
        self.output = Image(fit_mode="contain", size_hint=(1, 1 - BAR), pos_hint={"x": 0, "top": 1})
        self.pip = Image(fit_mode="contain", size_hint=(0.28, 0.28), pos_hint={"right": 0.99, "top": 0.99})
        self.overlay = Label(size_hint=(0.7, 0.2), pos_hint={"x": 0.01, "top": 0.99}, halign="left", valign="top",
                             font_size="13sp", color=(1, 1, 1, 1), outline_width=2, outline_color=(0, 0, 0, 1))
        self.overlay.bind(size=lambda w, s: setattr(w, "text_size", s))
        self.message = Label(size_hint=(1, 0.15), pos_hint={"x": 0, "center_y": 0.5}, font_size="18sp",
                             color=(1, 0.9, 0.4, 1), outline_width=2, outline_color=(0, 0, 0, 1))
        for widget in (self.output, self.pip, self.overlay, self.message, self._controls()):
            root.add_widget(widget)
        return root

    def _controls(self):
        s = self.session
        bar = BoxLayout(size_hint=(1, BAR), pos_hint={"x": 0, "y": 0}, spacing=2)
        self.width_spin = Spinner(text=str(s.config.width), values=[str(w) for w in s.widths()])
        self.res_spin = Spinner(text=str(s.config.resolution), values=[str(r) for r in s.resolutions()])
        self.runtime_spin = Spinner(text=f"{s.config.backend} {s.config.precision}",
                                    values=[f"{b} {p}" for b, p in s.runtimes()])
        self.auto_button = ToggleButton(text="Auto", state="down" if s.auto else "normal")
        self.view_button = ToggleButton(text="Split")
        capture = Button(text="Capture")
        self.width_spin.bind(text=lambda _, v: self.choose(width=float(v)))
        self.res_spin.bind(text=lambda _, v: self.choose(resolution=int(v)))
        self.runtime_spin.bind(text=lambda _, v: self.choose(runtime=v))
        self.auto_button.bind(state=lambda _, v: self.set_auto(v == "down"))
        self.view_button.bind(state=lambda _, v: self.set_split(v == "down"))
        capture.bind(on_release=lambda *_: self.capture())
        for w in (self.width_spin, self.res_spin, self.runtime_spin, self.auto_button, self.view_button, capture):
            bar.add_widget(w)
        return bar

    def set_split(self, split: bool):
        """Split view: input and output side by side; otherwise output with a PiP input."""
        if split:
            self.output.size_hint, self.output.pos_hint = (0.5, 1 - BAR), {"right": 1, "top": 1}
            self.pip.size_hint, self.pip.pos_hint = (0.5, 1 - BAR), {"x": 0, "top": 1}
        else:
            self.output.size_hint, self.output.pos_hint = (1, 1 - BAR), {"x": 0, "top": 1}
            self.pip.size_hint, self.pip.pos_hint = (0.28, 0.28), {"right": 0.99, "top": 0.99}

    # ---- configuration ------------------------------------------------------------------
    def choose(self, width=None, resolution=None, runtime=None):
        """A manual choice: it switches Auto off (the user has taken over)."""
        config = self.session.config
        backend, precision = runtime.split() if runtime else (config.backend, config.precision)
        wanted = Config(width or config.width, resolution or config.resolution, backend, precision)
        if wanted != config:
            self.auto_button.state = "normal"
            self.apply(wanted)

    def apply(self, config: Config):
        config = self.session.nearest(config)
        self.session.config = self.pipeline.config = config
        self.width_spin.text, self.res_spin.text = str(config.width), str(config.resolution)
        self.runtime_spin.text = f"{config.backend} {config.precision}"

    def set_auto(self, on: bool):
        self.session.auto = on
        self.auto = self.session.auto_controller() if on else None
        if self.auto:
            self.apply(self.session.config_for(self.auto.level))

    # ---- running ------------------------------------------------------------------------
    def on_start(self):
        self.pipeline = Pipeline(self.session.source, self.session.make_stylizer, self.session.config).start()
        self.pipeline_stylizers = self.pipeline.stylizers  # what ran, for tests and the exit summary
        self.set_auto(self.session.auto)
        self.started = time.perf_counter()
        Clock.schedule_interval(self.update, 0)

    def stalled(self) -> bool:
        """The source has reported trouble (no camera, unreadable video) and no frame has
        come for STALL_SECONDS."""
        since = self.last_shown or self.started
        return bool(self.pipeline.status) and time.perf_counter() - since > STALL_SECONDS

    def update(self, _dt):
        p = self.pipeline
        if self.frames_wanted and not p.error and self.stalled():
            p.error = f"no frames for {STALL_SECONDS:.0f} s: {p.status}"
        self.message.text = p.error or p.status
        result = p.results.take(timeout=0)
        if result is not None:
            self.show(result)
        unattended_failure = self.frames_wanted and p.error
        if self.frames_wanted and (self.shown >= self.frames_wanted or unattended_failure) and not self.summary:
            self.finish()

    def show(self, result):
        now = time.perf_counter()
        self.output.texture = self.textures["out"] = _texture_from(result.output, self.textures.get("out"))
        self.pip.texture = self.textures["in"] = _texture_from(result.frame, self.textures.get("in"))
        self.shown += 1
        self.current_frame, self.current_config = result.frame, result.config
        self.first_shown = self.first_shown or now
        self.model_ms.append(result.model_ms)
        if self.last_shown is not None:
            interval = (now - self.last_shown) * 1000
            self.intervals.append(interval)
            if self.auto and result.config == self.session.config:
                level = self.auto.observe(interval, result.model_ms)
                if level:
                    self.apply(self.session.config_for(level))
        self.last_shown = now
        if now - self.overlay_at >= OVERLAY_SECONDS:
            self.overlay.text, self.overlay_at = self.overlay_text(result.config), now

    def fps(self) -> float:
        return 1000 / float(np.mean(self.intervals)) if self.intervals else 0.0

    def overlay_text(self, config) -> str:
        model = float(np.median(list(self.model_ms)[-30:]))
        mode = f"Auto (target {self.session.target_fps:.0f} FPS)" if self.auto else "manual"
        return (f"{self.fps():.1f} FPS   model {model:.1f} ms\nwidth {config.width}   {config.resolution} px   "
                f"{config.backend} {config.precision}\n{mode}   source: {self.session.source.name}")

    # ---- capture ------------------------------------------------------------------------
    def capture(self):
        """Finalize: the frame on screen, stylized at full quality in the background."""
        shown = self.current_frame
        if shown is None:
            return None
        done = threading.Event()
        self.captures.append(done)

        def work():
            try:
                # its own stylizer: an interpreter must not run in two threads at once
                stylizer = self.session.make_stylizer(self.session.full_quality())
                output = stylizer(shown)
                stem = self.session.capture_dir() / f"capture_{time.strftime('%Y%m%d-%H%M%S')}_{len(self.captures)}"
                write_image(f"{stem}_input.png", shown)
                write_image(f"{stem}_anime.png", output)
                done.path = Path(f"{stem}_anime.png")
            except Exception as exc:
                done.error = f"capture failed: {exc}"
            done.set()
        threading.Thread(target=work, daemon=True).start()
        return done

    # ---- exit ---------------------------------------------------------------------------
    def finish(self):
        for done in self.captures:
            done.wait(60)
        if self.screenshot:
            try:
                with atomic_path(self.screenshot) as tmp:
                    self.root.export_to_png(str(tmp))
            except OSError as exc:  # checked before the run, but a disk can fill: the summary says it
                self.pipeline.error = self.pipeline.error or f"screenshot {self.screenshot}: {exc.strerror or exc}"
        c = self.session.config
        self.summary = {"frames": self.shown, "fps": round(self.fps_overall(), 2),
                        "model_p50_ms": round(float(np.median(self.model_ms)), 2) if self.model_ms else None,
                        "width": c.width, "resolution": c.resolution, "backend": c.backend,
                        "precision": c.precision, "auto": bool(self.auto),
                        "dropped_frames": self.pipeline.inputs.dropped, "pending": self.pipeline.inputs.pending}
        if self.pipeline.error:
            self.summary["error"] = self.pipeline.error
        self.stop()

    def fps_overall(self) -> float:
        return (self.shown - 1) / (self.last_shown - self.first_shown) if self.shown > 1 else 0.0

    def on_stop(self):
        Clock.unschedule(self.update)
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
            self.on_exit(self.summary)


def print_summary(summary):
    if summary:
        print(json.dumps(summary), flush=True)
