from django.urls import path

from studio.api import openai_views, openapi, task_dialects

app_name = "api"

urlpatterns = [
    # OpenAI Images API
    path("v1/images/generations", openai_views.images_generations, name="images-generations"),
    path("v1/images/edits", openai_views.images_edits, name="images-edits"),
    path("v1/models", openai_views.models, name="models"),
    path("v1/files/<str:token>", openai_views.image_link, name="image-link"),
    path("v1/openapi.json", openapi.openapi, name="openapi"),
    # Native task API
    path("api/v1/tasks", task_dialects.native_tasks, name="tasks"),
    path("api/v1/tasks/<str:task_id>", task_dialects.native_task, name="task"),
    # sjinn dialect
    path("api/un-api/create_tool_task", task_dialects.sjinn_create, name="sjinn-create"),
    path("api/un-api/query_tool_task_status", task_dialects.sjinn_query, name="sjinn-query"),
    # sinancode dialect
    path("v1/generate/k/gpt-image-2-image-to-image", task_dialects.sinancode_create, name="sinancode-create"),
    path("v1/tasks/<str:task_id>", task_dialects.sinancode_task, name="sinancode-task"),
    # givon dialect
    path("api/v1/generations", task_dialects.givon_generations, name="givon-create"),
    path("api/v1/generations/<str:task_id>", task_dialects.givon_generation, name="givon-task"),
]
