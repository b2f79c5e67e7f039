"""The sandbox's routes, one Flask blueprint per group of endpoints."""

from __future__ import annotations

from flask import Blueprint

from sandbox.routes.compensation import compensation
from sandbox.routes.control import control
from sandbox.routes.control_curves import control_curves
from sandbox.routes.control_lpc import control_lpc
from sandbox.routes.control_reports import control_reports
from sandbox.routes.control_users import control_users
from sandbox.routes.eligibility import eligibility
from sandbox.routes.enrollment import enrollment
from sandbox.routes.events import events
from sandbox.routes.identity import identity
from sandbox.routes.locations import locations
from sandbox.routes.reports import reports
from sandbox.routes.resources import resources
from sandbox.routes.simulation import simulation
from sandbox.routes.swagger import swagger
from sandbox.routes.users import users
from sandbox.routes.webhooks import webhooks

BLUEPRINTS: tuple[Blueprint, ...] = (
    identity,
    swagger,
    webhooks,
    events,
    simulation,
    users,
    locations,
    resources,
    enrollment,
    eligibility,
    reports,
    compensation,
    control,
    control_users,
    control_curves,
    control_lpc,
    control_reports,
)
