"""The main window: start-up view until the stack answers, then the dashboard (drop zone,
jobs table, result, health), one notification bar, an always-visible health summary."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from skinapp.client import Client
from skinapp.config import Settings
from skinapp.gui.health_state import HealthState
from skinapp.gui.image_fetch import ImageFetcher
from skinapp.gui.jobs_state import JobStore
from skinapp.gui.phones_state import PhonesState
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_controller import DashboardController, Restartable
from skinapp.gui.qt_drop_zone import QtDropZone
from skinapp.gui.qt_health_panel import QtHealthPanel, QtHealthSummary
from skinapp.gui.qt_jobs_model import JobsTableModel
from skinapp.gui.qt_jobs_view import QtJobsView, Shortcut
from skinapp.gui.qt_notifications import QtNotifications
from skinapp.gui.qt_phones_panel import QtPhonesPanel, lan_allowed
from skinapp.gui.qt_result_view import QtResultView
from skinapp.gui.qt_settings import QtSettingsDialog
from skinapp.gui.qt_stack_control import OwnedStack, StackController
from skinapp.gui.qt_startup import QtStartupView

logger = logging.getLogger(__name__)


def ask_close(window: QWidget, active: int, owned: bool) -> bool:
    what = (
        "Closing stops the local stack: running jobs stop now, queued ones run the next time "
        "skinapp starts."
        if owned
        else "They keep running in the stack this window attached to."
    )
    answer = QMessageBox.question(
        window,
        "Jobs are running",
        f"{active} job{'s are' if active != 1 else ' is'} not finished. {what}\n\nClose skinapp?",
    )
    return answer == QMessageBox.StandardButton.Yes


class QtMainWindow(QMainWindow):
    dashboard_ready = Signal()  # the first health answer after connecting

    def __init__(
        self,
        settings: Settings,
        store_settings: QSettings,
        stack_control: StackController | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings, self.qsettings, self.stack_control = settings, store_settings, stack_control
        self.setWindowTitle("skinapp — skin image analysis")
        self.store = JobStore()
        # the limits this window's stack runs with; an attached stack's failed job names its own
        self.health = HealthState(
            time_limit=settings.celery_task_soft_time_limit, batch_max=settings.batch_max_images
        )
        self.runner = AsyncRunner(self)
        self.controller: DashboardController | None = None
        self.confirm_close: Callable[[int, bool], bool] = lambda n, owned: ask_close(self, n, owned)
        self._ready_sent = False
        self._owner: Restartable | None = None
        self._build_widgets()
        self._build_menus()
        self._restore()
        self.health.changed.connect(self._on_health)
        self.setAcceptDrops(True)  # a drop anywhere on the window goes to the drop zone
        if stack_control is not None:
            stack_control.stage.connect(self.startup.on_stage)
            stack_control.failed.connect(self.startup.on_failed)
            stack_control.ready.connect(self._stack_ready)

    # --- building ---------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.startup = QtStartupView(self)
        self.notifications = QtNotifications(self)
        self.drop_zone = QtDropZone(
            self.runner, self.qsettings, self.settings.batch_max_images, self
        )
        self.jobs_model = JobsTableModel(self.store, self.runner, self)
        self.jobs_view = QtJobsView(self.jobs_model, self)
        self.result_view = QtResultView(self.store, self.qsettings, self)
        self.health_panel = QtHealthPanel(self.health, self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.result_view, "Result")
        self.tabs.addTab(self.health_panel, "Health")
        self.phones_panel = QtPhonesPanel(PhonesState(), self.runner, self)
        self.phones_panel.set_lan_allowed(lan_allowed(self.qsettings))
        self.tabs.addTab(self.phones_panel, "Phones")
        self.splitter = self._build_splitter()
        dashboard = QWidget(self)
        layout = QVBoxLayout(dashboard)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.notifications)
        layout.addWidget(self.splitter, 1)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.startup)
        self.pages.addWidget(dashboard)
        self.dashboard = dashboard
        self.setCentralWidget(self.pages)
        self.health_summary = QtHealthSummary(self.health, self)
        self.feed_label = QLabel("", self)
        self.statusBar().addPermanentWidget(self.feed_label)
        self.statusBar().addPermanentWidget(self.health_summary)
        self._wire_widgets()

    def _build_splitter(self) -> QSplitter:
        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.drop_zone)
        column.addWidget(self.jobs_view, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.tabs.setMinimumWidth(440)
        splitter.setSizes([780, 520])
        return splitter

    def _wire_widgets(self) -> None:
        self.jobs_view.current_job_changed.connect(self._show_job)
        self.result_view.notify.connect(self.notifications.show_message)
        self.drop_zone.skipped_files.connect(
            lambda skipped: self.notifications.show_message(
                "warning",
                f"{len(skipped)} file(s) skipped: not images (see the list under the drop zone)",
            )
        )
        self.phones_panel.lan_toggled.connect(self._set_lan)
        self.phones_panel.notify.connect(self.notifications.show_message)
        self.startup.quit_requested.connect(self.close)
        self.startup.retry_requested.connect(self.start)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._add(
            file_menu, "&Open images…", QKeySequence.StandardKey.Open, self.drop_zone.open_files
        )
        self._add(file_menu, "Open &folder…", "Ctrl+Shift+O", self.drop_zone.open_folder)
        self._add(file_menu, "&Paste image", QKeySequence.StandardKey.Paste, self.drop_zone.paste)
        file_menu.addSeparator()
        self._add(
            file_menu, "Export result as &JSON…", "Ctrl+E", self.result_view.export_json_dialog
        )
        self._add(
            file_menu,
            "Export &PDF report…",
            QKeySequence.StandardKey.Print,
            self.result_view.export_pdf_dialog,
        )
        file_menu.addSeparator()
        self._add(file_menu, "&Settings…", "Ctrl+,", self.open_settings)
        self._add(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        jobs = bar.addMenu("&Jobs")
        for action in (
            self.jobs_view.cancel_action,
            self.jobs_view.resubmit_action,
            self.jobs_view.copy_action,
        ):
            jobs.addAction(action)
        self._add(jobs, "&Find", QKeySequence.StandardKey.Find, self._focus_search)
        self._add(jobs, "&Refresh", QKeySequence.StandardKey.Refresh, self._refresh)
        view = bar.addMenu("&View")
        self._add(view, "&Result", "Ctrl+1", lambda: self.tabs.setCurrentWidget(self.result_view))
        self._add(view, "&Health", "Ctrl+2", lambda: self.tabs.setCurrentWidget(self.health_panel))
        self._add(view, "&Notifications…", "Ctrl+Shift+N", self._show_history)

    def _add(
        self, menu: QMenu, text: str, shortcut: Shortcut, slot: Callable[[], object]
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # --- life -------------------------------------------------------------------------
    def start(self) -> None:
        """Attach to the local stack or start it; the start-up view shows the stages."""
        if self.stack_control is None:
            return
        self.startup.reset()
        self.pages.setCurrentWidget(self.startup)
        self.stack_control.start()

    def _stack_ready(self, api_url: str, token: str, owned: bool) -> None:
        stack = self.stack_control.stack if self.stack_control else None
        self.connect_to(api_url, token, OwnedStack(stack) if owned and stack else None)

    def connect_to(
        self,
        api_url: str,
        token: str,
        owner: Restartable | None = None,
        events_client: Callable[[], Client] | None = None,
        result_client: Callable[[], Client] | None = None,
    ) -> None:
        """Show the dashboard for the API at `api_url` (`owner` can restart the stack's parts;
        `events_client` / `result_client` make the clients of the event stream and the result
        fetcher, by default ones like `client`)."""
        self.health.api_url = api_url
        # a short timeout: a hung call must not hold the window's threads when it closes
        client = Client(api_url, token, timeout=15.0)
        controller = DashboardController(
            client,
            self.store,
            self.health,
            owner=owner,
            client_factory=events_client,
            result_client=result_client,
            parent=self,
        )
        controller.notify.connect(self.notifications.show_message)
        controller.restart_done.connect(self.health_panel.restart_finished)
        controller.submitted.connect(self.jobs_view.select_job)
        self.drop_zone.submit_requested.connect(controller.submit)
        self.jobs_view.cancel_requested.connect(controller.cancel)
        self.jobs_view.resubmit_requested.connect(controller.resubmit)
        self.health_panel.restart_requested.connect(controller.restart)
        self.health_panel.set_can_restart(owner is not None)
        self._owner = owner
        self.phones_panel.set_client(client)
        self.result_view.set_images(
            ImageFetcher(lambda: Client(api_url, token, timeout=15.0), controller.runner.post)
        )
        controller.feed_changed.connect(self._on_feed_state)
        self._on_feed_state(False)  # until the event stream proves itself
        self.controller = controller
        self.pages.setCurrentWidget(self.dashboard)
        controller.start()

    def _set_lan(self, on: bool) -> None:
        """Save "Allow phones on the clinic network"; restart our stack's API with it."""
        self.qsettings.setValue("stack/lan", "true" if on else "false")
        owner = self._owner
        if owner is None or not hasattr(owner, "set_lan"):
            self.notifications.show_message(
                "info", "Phones on the clinic network: applies when this window starts the stack"
            )
            return
        what = "on" if on else "off"
        self.notifications.show_message("info", f"Turning phones on the clinic network {what}...")
        self.runner.run(
            lambda: owner.set_lan(on),
            lambda _: self.phones_panel.refresh(),
            lambda exc: self.notifications.show_message("error", f"LAN mode: {exc}"),
        )

    def _on_feed_state(self, up: bool) -> None:
        self.feed_label.setText("live updates" if up else "polling")

    def _on_health(self) -> None:
        if not self._ready_sent and self.controller is not None:
            self._ready_sent = True
            self.dashboard_ready.emit()

    def _show_job(self, job_id: str) -> None:
        self.result_view.show_job(job_id)
        if self.controller is not None:
            self.controller.select(job_id)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.controller is not None:
            self.drop_zone.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if self.controller is not None:
            self.drop_zone.dropEvent(event)

    # --- actions ----------------------------------------------------------------------
    def _focus_search(self) -> None:
        self.jobs_view.search.setFocus()
        self.jobs_view.search.selectAll()

    def _refresh(self) -> None:
        if self.controller is not None:
            self.controller.poll_jobs()
            self.controller.poll_health()

    def _show_history(self) -> None:
        QMessageBox.information(
            self, "Notifications", self.notifications.history_text() or "None yet."
        )

    def settings_dialog(self) -> QtSettingsDialog:
        """The Settings dialog; attached, its Models page lists the stack's checkpoints."""
        client = self.controller.client if self.controller is not None else None
        return QtSettingsDialog(
            self.qsettings, self.settings, self, client=client, runner=self.runner
        )

    def open_settings(self) -> None:
        if self.settings_dialog().exec():
            self.notifications.show_message(
                "info", "Settings saved; they apply the next time skinapp starts its stack."
            )

    # --- geometry and closing ---------------------------------------------------------
    def _restore(self) -> None:
        geometry = self.qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        splitter = self.qsettings.value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def _save(self) -> None:
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/splitter", self.splitter.saveState())
        self.qsettings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        owned = bool(self.stack_control and self.stack_control.owned)
        active = len(self.store.active())
        if active and not self.confirm_close(active, owned):
            event.ignore()
            return
        self._save()
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop timers and threads, then what this window started (the window hides first)."""
        if self.controller is not None:
            self.controller.stop()
            if self.result_view.images is not None:
                self.result_view.images.stop()
            self.controller.client.close()
        self.runner.close()
        self.hide()
        QApplication.processEvents()
        if self.stack_control is not None:
            self.stack_control.stop()
