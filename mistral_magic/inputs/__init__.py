"""What goes with a prompt: notebook values, pictures, documents and uploads.

`prompt` (``{name}`` interpolation), `dataframes` (a DataFrame as a table or a summary, and
what of it went), `chunks` (``--image`` and
``--file`` as message chunks, counted and shown as thumbnails), `pictures` (whatever a
notebook holds as a picture, encoded once), `documents` (documents read once, counted before
sending), `audio` (recordings typed by their bytes, their length measured by decoding), `uploads` (the Files API, once per content and backend; signed URLs) and `paths`
(a path from a DataFrame: inside a root folder, typed by its bytes).

It may use `show` (thumbnails), `money` (counting), `store` and `errors`; it sends nothing
but uploads.
"""
