PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version','2');
INSERT INTO meta VALUES('project_id','"77a276d537c3"');
INSERT INTO meta VALUES('image_root','"/tmp/team9gen/images"');
INSERT INTO meta VALUES('image_size','[8, 8]');
INSERT INTO meta VALUES('channels','3');
INSERT INTO meta VALUES('model','"cnn"');
INSERT INTO meta VALUES('width','0.25');
INSERT INTO meta VALUES('strategy','"fishermask"');
INSERT INTO meta VALUES('strategy_options','{}');
INSERT INTO meta VALUES('batch','6');
INSERT INTO meta VALUES('budget','null');
INSERT INTO meta VALUES('min_per_class','2');
INSERT INTO meta VALUES('seed','0');
INSERT INTO meta VALUES('max_epochs','3');
INSERT INTO meta VALUES('max_steps','6');
INSERT INTO meta VALUES('query_pool','2000');
INSERT INTO meta VALUES('cv_below','100');
INSERT INTO meta VALUES('min_eval','20');
INSERT INTO meta VALUES('cache_dir','null');
INSERT INTO meta VALUES('imports','[]');
INSERT INTO meta VALUES('created','1796147682.7476668');
CREATE TABLE classes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO classes VALUES(0,'red');
INSERT INTO classes VALUES(1,'green');
INSERT INTO classes VALUES(2,'blue');
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL
);
INSERT INTO images VALUES(1,'blue/000.png','9b5da9b0d7b7232644b590f7109df90e5444cc1e088f68338266b29e8d866c77',268,8,8,1796147682669406453,0,1796147682.777352333);
INSERT INTO images VALUES(2,'blue/001.png','e141b8bb5ddc7a873208ad867a7bc44256cc4ce5f92196c9533149f9ad09b649',268,8,8,1796147682669611930,0,1796147682.777352333);
INSERT INTO images VALUES(3,'green/000.png','2c83e16b21f0a452b0a2c73c17cded12a05a816bac6c2e434f8330644c0c11e6',268,8,8,1796147682668729666,0,1796147682.777352333);
INSERT INTO images VALUES(4,'green/001.png','a5ae24c348c2f37179ee057cc65b25f87626efcd1b3a1abadc9132f8945453d1',268,8,8,1796147682669087514,0,1796147682.777352333);
INSERT INTO images VALUES(5,'red/000.png','c7371e6cecab30148d05c0e5ef6305d0a521f437a62fdb12e543a8384467e09d',268,8,8,1796147682663680852,0,1796147682.777352333);
INSERT INTO images VALUES(6,'red/001.png','f2a4314fd4e910f848d97aeefd5208501e2a199d7561cef42906c9970bf72793',268,8,8,1796147682668364809,0,1796147682.777352333);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL,
    class_id INTEGER REFERENCES classes(id),
    undoes INTEGER REFERENCES labels(id),
    source TEXT NOT NULL,
    client TEXT,
    created REAL NOT NULL,
    annotator TEXT
);
INSERT INTO labels VALUES(1,4,'label',0,NULL,'human',NULL,1796147682.9081480503,'alice');
INSERT INTO labels VALUES(2,1,'skip',NULL,NULL,'human',NULL,1796147682.9156749248,'bob');
INSERT INTO labels VALUES(3,5,'unsure',NULL,NULL,'human',NULL,1796147682.9159486294,NULL);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    strategy TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT '',
    n_labels INTEGER NOT NULL DEFAULT 0,
    last_label_id INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    settings TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO rounds VALUES(1,'done','fishermask','cold start: diverse images (k-center on downsampled pixels) until every class has 2 labels (when this batch was chosen: red: 0, green: 0, blue: 0)',0,0,NULL,'{}','done',0,1,4975,'d8c7394f-647d-4f4f-a8e6-9fd847a0c52c:4752496','',1796147682.7840003967,1796147682.9052231311,'{"schema_version": 2, "project_id": "77a276d537c3", "image_root": "/tmp/team9gen/images", "image_size": [8, 8], "channels": 3, "model": "cnn", "width": 0.25, "strategy": "fishermask", "strategy_options": {}, "batch": 6, "budget": null, "min_per_class": 2, "seed": 0, "max_epochs": 3, "max_steps": 6, "query_pool": 2000, "cv_below": 100, "min_eval": 20, "cache_dir": null, "imports": [], "created": 1796147682.7476668}');
INSERT INTO rounds VALUES(2,'done','revisit','revisit: the images marked unsure or skipped, oldest first (the next batch is chosen by the strategy as usual)',1,3,NULL,'{}','done',0,0,NULL,NULL,'',1796147682.9165318011,1796147682.9165318011,'{"schema_version": 2, "project_id": "77a276d537c3", "image_root": "/tmp/team9gen/images", "image_size": [8, 8], "channels": 3, "model": "cnn", "width": 0.25, "strategy": "fishermask", "strategy_options": {}, "batch": 6, "budget": null, "min_per_class": 2, "seed": 0, "max_epochs": 3, "max_steps": 6, "query_pool": 2000, "cv_below": 100, "min_eval": 20, "cache_dir": null, "imports": [], "created": 1796147682.7476668}');
CREATE TABLE settings_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    changed REAL NOT NULL,
    changes TEXT NOT NULL
);
CREATE TABLE queue (
    position INTEGER NOT NULL,
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    round_id INTEGER,
    score REAL,
    guesses TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO queue VALUES(0,1,2,NULL,'[]');
INSERT INTO queue VALUES(1,5,2,NULL,'[]');
CREATE TABLE forgotten_images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL,
    forgotten REAL NOT NULL,
    kind TEXT,
    class_id INTEGER,
    labels TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE held_out (
    round_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    pred INTEGER NOT NULL,
    prob REAL NOT NULL,
    PRIMARY KEY (round_id, image_id)
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('rounds',2);
INSERT INTO sqlite_sequence VALUES('labels',3);
CREATE INDEX labels_image ON labels(image_id, id);
COMMIT;
