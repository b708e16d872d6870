"""Every route of the API, one module per resource."""

from console.app import pages as app_pages
from api.routes import console_users, pending
from api.routes import announcements, approvals, audit, campaigns, catalog, claims, earning, fairness, fulfillment, funding, health, leaderboards, me, participants, points, programs, sessions, spins, sweepstakes, taxes, trust

ROUTES = [*health.ROUTES, *programs.ROUTES, *participants.ROUTES, *sessions.ROUTES, *points.ROUTES, *me.ROUTES,
          *earning.ROUTES, *claims.ROUTES, *catalog.ROUTES, *fulfillment.ROUTES,
          *campaigns.ROUTES, *funding.ROUTES, *leaderboards.ROUTES,
          *fairness.ROUTES, *spins.ROUTES, *sweepstakes.ROUTES, *announcements.ROUTES, *taxes.ROUTES, *trust.ROUTES, *approvals.ROUTES, *audit.ROUTES,
          *console_users.ROUTES, *pending.ROUTES,
          # The phone app's pages (console/app): the same server serves them.
          *app_pages.ROUTES]

__all__ = ["ROUTES"]
