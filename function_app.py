"""The Azure Functions app (Python v2 model): registers the blueprints of reclaim/functions/."""

import azure.functions as func

from reclaim.functions import BLUEPRINTS

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
