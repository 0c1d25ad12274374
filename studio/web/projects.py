"""The projects of a workspace: list, create, rename, archive, restore."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import get_membership_for_user, get_writer_membership_for_user
from accounts.http import AuthenticatedRequest
from accounts.models import Membership
from studio.engine.services import (
    ProjectError,
    project_archive,
    project_create,
    project_rename,
    project_restore,
)
from studio.models import Project
from studio.web.forms import ProjectForm

logger = logging.getLogger(__name__)


def _get_project_for_user(request: AuthenticatedRequest, project_id: int) -> tuple[Project, Membership]:
    """The project and the user's membership of its workspace; 404 for anyone who is not a member."""
    project = get_object_or_404(
        Project.objects.select_related("workspace").filter(workspace__memberships__user=request.user),
        pk=project_id,
    )
    membership = Membership.objects.select_related("workspace").get(
        workspace=project.workspace, user=request.user
    )
    return project, membership


def _get_writable_project_for_user(
    request: AuthenticatedRequest, project_id: int
) -> tuple[Project, Membership]:
    project, membership = _get_project_for_user(request, project_id)
    if not membership.can_write:
        raise PermissionDenied("Viewers cannot change the projects of this workspace.")
    return project, membership


@login_required
@require_GET
def project_list(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_membership_for_user(request, slug)
    Project.default_for(membership.workspace)
    projects = Project.objects.filter(workspace=membership.workspace).annotate(
        generation_count=Count("generations")
    )
    return render(
        request,
        "studio/projects.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "is_current": membership.workspace_id == request.membership.workspace_id,
            "open_projects": [project for project in projects if not project.is_archived],
            "archived_projects": [project for project in projects if project.is_archived],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_writer_membership_for_user(request, slug)
    form = ProjectForm(request.POST or None, workspace=membership.workspace)
    if request.method == "POST" and form.is_valid():
        project = project_create(membership=membership, name=form.cleaned_data["name"])
        messages.success(request, f"Project {project} created. Pick it in the composer.")
        return redirect("studio:project-list", slug)
    context = {"form": form, "membership": membership, "workspace": membership.workspace}
    return render(request, "studio/project_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project, membership = _get_writable_project_for_user(request, project_id)
    form = ProjectForm(request.POST or None, workspace=project.workspace, project=project)
    if request.method == "POST" and form.is_valid():
        project_rename(project=project, membership=membership, name=form.cleaned_data["name"])
        messages.success(request, f"Renamed to {project}.")
        return redirect("studio:project-list", project.workspace.slug)
    context = {"form": form, "project": project, "membership": membership, "workspace": project.workspace}
    return render(request, "studio/project_form.html", context)


@login_required
@require_POST
def project_archive_view(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project, membership = _get_writable_project_for_user(request, project_id)
    try:
        project_archive(project=project, membership=membership)
    except ProjectError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"{project} is archived: its images stay, the composer no longer offers it."
        )
    return redirect("studio:project-list", project.workspace.slug)


@login_required
@require_POST
def project_restore_view(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project, membership = _get_writable_project_for_user(request, project_id)
    project_restore(project=project, membership=membership)
    messages.success(request, f"{project} is open again.")
    return redirect("studio:project-list", project.workspace.slug)
