"""Account pages, by area: workspaces and members, invitations, API keys. Sign-up and login: allauth."""
