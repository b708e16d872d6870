"""The web faces: the program manager's console (`/console`) and the salesperson's phone app
(`/app/{program_id}`). Both are served by the same app as the API and call the domain's
use-case functions, never route modules; templates and static files ship as package data."""
