import os

from piccolo.conf.apps import AppConfig

from games.sweepstakes.tables import Sweepstakes, SweepstakesEntriesFile, SweepstakesFreeEntry, SweepstakesWinner
from games.tables import SeedPair, Spin, SpinCampaign

APP_CONFIG = AppConfig(
    app_name="games",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[SpinCampaign, SeedPair, Spin, Sweepstakes, SweepstakesEntriesFile, SweepstakesWinner,
                   SweepstakesFreeEntry],
    migration_dependencies=[],
    commands=[],
)
