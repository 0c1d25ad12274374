def test_the_openapi_document_describes_every_endpoint(client, db):
    document = client.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/images/generations", "/v1/images/edits", "/v1/models"} <= set(document["paths"])
    generation = document["paths"]["/v1/images/generations"]["post"]
    properties = generation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"model", "prompt", "n", "size", "quality", "stream", "partial_images", "response_format"} <= set(
        properties
    )
    assert {"200", "400", "401", "402", "429"} <= set(generation["responses"])
