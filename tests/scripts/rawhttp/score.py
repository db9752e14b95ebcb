"""@rawhttp and AMLResponse: the whole request in, a full answer out."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse({"method": "GET", "args": request.args}, 200, json_str=True)
    if request.headers.get("X-Mode") == "reject":
        return AMLResponse("rejected by the script", 422)
    body = request.get_data()
    # Binary in, binary out: the bytes reversed, and what the script saw.
    return AMLResponse(body[::-1], 201, {"Content-Type": f"application/x-reversed; was={request.content_type}"})
