"""The salesperson's phone app (`/app/{program_id}`): its shell page, manifest and files."""
