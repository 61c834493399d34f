import os

from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


def hello(request):
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME"),
            "reverse": reverse("hello"),
            "get": {k: request.GET.getlist(k) for k in request.GET},
            "settings": os.environ.get("DJANGO_SETTINGS_MODULE"),
            "process_group": request.META.get("mod_wsgi.process_group"),
        }
    )


@csrf_exempt
def form(request):
    return JsonResponse({"post": {k: request.POST.getlist(k) for k in request.POST}, "method": request.method})


def page(request, name):
    return render(request, "page.html", {"name": name})
