"""Account pages, by area: signup (auth), workspaces and members, invitations."""
