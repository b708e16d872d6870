import os

from piccolo.conf.apps import AppConfig

from programs.tables import (
    Activity,
    ActivityType,
    Announcement,
    AnnouncementMail,
    ApprovalRequest,
    AuditEvent,
    ParticipantImport,
    ApiKey,
    Award,
    Claim,
    ConsoleInvite,
    ConsoleMembership,
    ConsoleUser,
    EarningRule,
    ExpiryCheckpoint,
    FeedItem,
    Funding,
    Leaderboard,
    Participant,
    Program,
    RefreshToken,
    StripeEvent,
    TaxProfile,
    Team,
)

APP_CONFIG = AppConfig(
    app_name="programs",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[Program, ApiKey, Team, Participant, RefreshToken, ActivityType, Activity, EarningRule, Award, Claim,
                   FeedItem, Leaderboard, Funding, StripeEvent, Announcement, AnnouncementMail,
                   TaxProfile, ConsoleUser, ConsoleMembership, ConsoleInvite, ApprovalRequest,
                   AuditEvent, ParticipantImport, ExpiryCheckpoint],
    migration_dependencies=[],
    commands=[],
)
