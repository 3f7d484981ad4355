from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import path


def home(request):
    # static() names the file collectstatic wrote, with its content hash (the manifest).
    return HttpResponse(
        '<!doctype html><link rel="stylesheet" href="%s"><h1>Hello from mysite</h1>\n'
        % static("mysite/site.css")
    )


urlpatterns = [path("", home)]
