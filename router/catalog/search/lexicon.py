"""Capability lexicon: general intents (verbs) and common software nouns, with synonyms.

A tool's name and description are mapped to capability tags (``@read``, ``@issue``...), and so is a
query; the tags are matched as extra terms, which lets "retrieve a ticket" meet ``get_issue``.
Entries are general-purpose vocabulary (with the most common German, French, Spanish,
Portuguese, Italian, Japanese, Chinese, Korean and Russian forms of the same words; more of
those, and Polish, Turkish, Vietnamese, Indonesian, Arabic and Hindi, are in ``languages.txt``),
not the wording of any evaluation query.

Surface forms are analysed with the same pipeline as documents, so inflections that stem alike
match. Two-word phrases (``pull request``) match consecutive words. Japanese, Chinese and Korean
forms match as substrings of the query's CJK text, the longest at each place.
"""

from __future__ import annotations

import re

from .glossary import GLOSSARY
from .languages import FORMS
from .text import analyze, fold, has_cjk, stem, words

__all__ = ["ABBREVIATIONS", "CONCEPTS", "LEXICON", "Lexicon"]

_PARTICLES = frozenset({"up", "down", "off", "over", "back", "out", "away"})
_SEPARABLE_GAP = 3  # words between a phrasal verb and its particle ("hand the Jira bug over")
# German separable verbs put their prefix at the end of the clause ("Leg ... ein Issue an" is
# anlegen, "brich ihn ab" abbrechen); a clause ends at a sentence mark, a colon or a quote
_GERMAN_PARTICLES = frozenset(
    {"an", "ab", "auf", "aus", "ein", "hoch", "herunter", "hinzu", "zurück", "fest", "um", "vor",
     "zu", "weg", "los", "durch", "mit", "nach", "her", "hin", "weiter", "fort", "zusammen",
     "hinein", "heraus", "rein", "raus", "runter", "rauf"}
)  # fmt: skip
_CLAUSE_END = re.compile(r"[,;:!?]|\.(?=\s|$)|[„“”\"«»]")
_BEFORE_VERB = frozenset({"bitte", "und", "dann", "jetzt", "mal", "noch", "doch"})

# concept -> whitespace-separated surface forms; "a+b" is a two-word phrase.
CONCEPTS: dict[str, str] = {
    # ---- intents -------------------------------------------------------------------------------
    "read": """read get fetch retrieve obtain view show display open load see inspect access return pull+up bring+up look+at
        grab
        returns lesen lies anzeigen zeige zeig abrufen holen öffnen lire afficher obtenir recuperer
        récupérer voir ouvrir leer lee obtener mostrar muestra ver abrir 読 取得 表示 見せ 開
        ler leia mostre mostra veja abra obter obtenha leggi leggere mostrami visualizza vedi apri aprire ottieni ottenere recupera recuperare
        读 读取 查看 获取 显示 打开 看看 看一下 给我看 읽 조회 보여 확인 가져와 열어 прочитать прочитай прочти читать покажи
        показать открой открыть получить получи посмотреть посмотри выведи вывести""",
    "create": """create add new make insert generate build register start+new compose erstellen erstelle spin+up
        open+a open+an open+new sign+up file+a file+an raise+a raise+an cut+a put+together write+up log+a log+an
        ouvre+une ouvre+un abre+un abre+una abre+um abre+uma apri+un apri+una apri+uno
        anlegen hinzufugen hinzufügen neu neue neuen creer crée créer ajouter ajoute nouveau nouvelle
        crear crea añadir agregar nuevo nueva 作成 追加 新規 作
        criar crie cria adicionar adicione novo nova gerar creare aggiungi aggiungere nuovo nuova genera
        创建 新建 建立 添加 新增 生成 建一个 开一个 생성 만들 추가 새로운 등록 создать создай создайте создание добавить добавь
        новый новую новое новая сгенерировать сгенерируй завести заведи""",
    "update": """update edit modify change set patch alter amend rename replace adjust revise andern bump swap make+it make+them
        ändern ändere bearbeiten aktualisieren modifier changer mettre+a+jour actualizar modificar
        cambiar editar 更新 編集 変更 修正
        atualizar atualize atualiza edite alterar altere mudar mude modifique aggiorna aggiornare modifica cambia cambiare
        更新 修改 编辑 更改 改成 改为 设为 수정 변경 업데이트 편집 바꿔 바꾸 обновить обнови изменить измени отредактировать
        отредактируй поменять поменяй исправить исправь""",
    "delete": """delete remove drop erase destroy purge discard unlink uninstall clear trash wipe forget tear+down get+rid clean+up throw+away blow+away
        wipe+out nuke
        loschen löschen lösche entfernen supprimer supprime effacer eliminar elimina borrar borra 削除
        消
        excluir exclua apagar apague remover remova deletar eliminare cancella cancellare rimuovi rimuovere
        删除 删掉 移除 清除 去掉 清空 삭제 지워 지우 제거 удалить удали удаление убрать убери стереть сотри""",
    "search": """search find query lookup look+up seek locate discover grep filter match suchen suche look+into dig+up track+down hunt+down
        finden recherche rechercher chercher cherche trouver buscar busca encontrar consultar 検索 探
        調べ
        procurar procure pesquisar pesquise encontre busque cerca cercare trova trovare ricerca
        搜索 查找 查询 搜一下 找 检索 검색 찾아 찾기 찾 найти найди поиск искать ищи поищи""",
    "list": """list lists listing enumerate browse all every catalog overview inventory auflisten liste
        alle lister tous toutes listar todos todas 一覧 リスト 全
        elenca elencare elenco tutti tutte
        列出 列表 所有 全部 清单 목록 모든 전체 나열 список перечисли перечислить все всех""",
    "write": """write save store persist record record+that put append tack+on tack+onto overwrite dump schreiben schreibe speichern jot+down note+down
        speichere ecrire écrire enregistrer sauvegarder escribir guardar 書 保存 記録
        escrever escreva salvar salve gravar scrivi scrivere salva salvare
        写入 写到 保存 存储 存到 记录 저장 작성 기록 записать запиши сохранить сохрани написать напиши""",
    "send": """send post message notify publish reply respond announce tell senden sende schicken fire+off shoot+over send+over
        schreib envoyer envoie publier enviar envía publicar 送 投稿 返信
        mandar mande envie invia inviare manda mandare pubblica
        发送 发给 发到 发一条 发个 发布 回复 通知 보내 전송 발송 게시 답장 알려 отправить отправь послать пошли опубликовать
        опубликуй ответить ответь""",
    "run": """run execute exec invoke launch trigger perform call kick+off ausführen ausfuhren starten fire+up boot+up start+up
        executer exécuter lancer lance ejecutar ejecuta lanzar 実行 起動
        executar rodar esegui eseguire avvia avviare
        运行 执行 跑一下 启动 触发 调用 실행 돌려 구동 트리거 запустить запусти выполнить выполни исполнить""",
    "stop": """stop kill terminate cancel abort halt end close quit shutdown stoppen beenden arreter shut+down turn+off switch+off shut+off
        spin+down
        arrêter terminer detener parar cerrar cierra cierre 停止 終了 閉
        encerrar encerre fechar feche ferma fermare termina chiudi chiudere
        停止 终止 取消 关闭 结束 停掉 杀掉 중지 중단 종료 닫아 취소 멈춰 остановить останови прервать прерви закрыть закрой
        отменить отмени завершить заверши""",
    "complete": """complete completed completion done finish finished accomplish mark+done tick+off
        cross+off mark+off wrap+up close+out
        check+off resolve resolved erledigen erledigt abschliessen abschließen fertig achever terminé
        completar completado hecho terminado concluir concluido concluído feito completare completato
        fatto 完了 済み 完成 已完成 做完 搞定 완료 끝냈 끝났 выполнено сделано готово""",
    "navigate": """navigate go+to go+back go+forward go+home goto visit browse open+url load+page
        aufrufen besuchen naviguer visiter navegar visitar 移動 開
        访问 跳转 前往 导航到 이동 접속 방문 перейти перейди зайти зайди""",
    "download": """download export pull save+as herunterladen telecharger télécharger descargar
        ダウンロード
        baixar baixe scarica scaricare
        下载 导出 다운로드 내려받 скачать скачай экспорт экспортировать""",
    "upload": """upload attach import push hochladen televerser téléverser subir アップロード 添付
        carregar carregue carica caricare
        上传 导入 推送 업로드 올려 загрузить загрузи импорт импортировать""",
    "move": """move rename relocate transfer verschieben umbenennen deplacer déplacer renommer mover drag
        renombrar 移動 名前
        mova renomear renomeie sposta spostare rinomina
        移动 重命名 改名 转移 옮겨 옮기 이름을 переместить перемести переименовать переименуй перенести перенеси""",
    "copy": """copy duplicate clone fork kopieren copier copiar コピー 複製
        copie duplicar copia copiare
        复制 克隆 拷贝 복사 복제 포크 скопировать скопируй копировать копию клонировать клонируй форкнуть""",
    "compare": """compare diff difference differences changes changed versus vs vs. vergleichen comparer comparar 比較
        差分
        confronta confrontare
        比较 对比 差异 区别 비교 차이 сравнить сравни разница различия""",
    "status": """status state health check progress monitor zustand etat état estado 状態 ステータス
        transition in+progress in+review
        状态 健康 进度 상태 진행 статус состояние""",
    "assign": """assign assignee reassign owner zuweisen assigner asignar 割り当 hand+over hand+off
        分配 指派 负责人 할당 배정 담당 назначить назначь исполнитель""",
    "link": """link relate relation relationship connect associate association dependency verknupfen hook+up wire+up
        verknüpfen lier relier vincular enlazar 関連 リンク
        关联 链接 连接 연결 링크 связать свяжи ссылка привязать привяжи""",
    "click": """click press tap push+button klicken klicke cliquer clique hacer+clic clic クリック 押
        点击 单击 按下 클릭 눌러 нажать нажми кликнуть кликни""",
    "type": """type fill enter input form keyboard key tippen eingeben saisir remplir escribir rellenar fill+in fill+out
        keystroke hotkey shortcut escape esc backspace arrowup arrowdown pageup pagedown
        入力
        输入 填写 填入 表单 입력 채워 ввести введи заполнить заполни форма форму""",
    "wait": """wait sleep pause until warten attendre esperar 待
        等待 等到 기다 대기 подождать подожди ждать""",
    "summarize": """summarize summary overview gist tldr recap analyze analyse analysis explain reason think zusammenfassen dig+into break+down
        résumer resumir 要約 分析
        resuma riassumi riassumere
        总结 摘要 概括 分析 요약 분석 резюме кратко проанализировать проанализируй анализ""",
    "convert": """convert transform translate umrechnen umwandeln convertir 変換
        converter converta converti convertire
        转换 换算 转成 변환 환산 конвертировать конвертируй перевести переведи преобразовать""",
    "count": """count number how+many total size statistics stats metrics anzahl nombre combien cuantos
        cuántos 数
        quantos quantas contar quanti quante contare
        数量 多少 统计 计数 几个 개수 몇개 통계 сколько количество посчитать посчитай статистика""",
    "scale": """scale resize replicas grow shrink skalieren
        扩容 缩容 副本数 스케일 확장 축소 масштабировать масштабируй реплики""",
    "deploy": """roll+back deploy deployment release rollout ship publish rollback bereitstellen déployer
        desplegar デプロイ リリース
        部署 上线 回滚 배포 롤백 развернуть разверни деплой откатить откати""",
    "install": """install setup set+up configure installieren installer instalar インストール
        安装 설치 установить установи""",
    "comment": """comment comments note remark annotate reply kommentar kommentieren commentaire
        commenter comentario comentar コメント
        comentarios commento commenti commentare
        评论 备注 注释 留言 댓글 코멘트 주석 комментарий комментарии прокомментировать прокомментируй""",
    # ---- common software nouns -----------------------------------------------------------------
    "issue": """issue issues ticket tickets bug bugs task tasks defect story epic incident jira problem
        fehler aufgabe ticket probleme problème tâche incidencia tarea error+report 課題 チケット バグ
        不具合
        chamado chamados tarefas segnalazione attivita
        问题 工单 缺陷 任务 이슈 티켓 버그 과제 задача задачу задачи тикет баг""",
    "pull_request": """pull+request pull+requests pr prs merge+request mr merge review patch
        プルリクエスト マージ
        合并请求 拉取请求 머지 병합 풀리퀘 пулреквест мерж реквест""",
    "repository": """repository repositories repo repos project codebase source+code git github gitlab
        repositorium dépôt depot repositorio リポジトリ
        仓库 代码库 저장소 레포 리포지토리 репозиторий репозитории репо""",
    "branch": """branch branches checkout zweig branche rama ブランチ
        分支 브랜치 ветка ветку ветки""",
    "commit": """commit commits history log changes revision changeset stage staged staging コミット
        履歴
        提交 历史 커밋 이력 히스토리 коммит коммиты история""",
    "file": """file files document documents path content contents text pdf markdown datei dateien
        readme dockerfile makefile dokument fichier fichiers archivo archivos documento ファイル 文書
        arquivo arquivos
        文件 文档 内容 파일 문서 내용 файл файлы документ содержимое""",
    "directory": """directory directories folder folders dir tree ordner verzeichnis dossier répertoire
        repertoire carpeta directorio フォルダ ディレクトリ
        pasta pastas diretorio cartella cartelle
        目录 文件夹 폴더 디렉토리 디렉터리 папка папку директория каталог""",
    "web": """web page webpage website site url link html internet online browser http https scrape
        crawl seite webseite internetseite pagina página sitio ウェブ ページ サイト ネット
        sito
        网页 网站 网址 页面 웹 페이지 사이트 сайт страница веб""",
    "browser": """browser tab window page element headless dom playwright puppeteer navigateur navegador
        ブラウザ
        浏览器 标签页 브라우저 탭 браузер вкладка вкладку""",
    "screenshot": """screenshot screen capture image picture snapshot photo bildschirmfoto
        capture+d'écran captura スクリーンショット 画面
        截图 截屏 屏幕 스크린샷 캡처 화면 скриншот снимок""",
    "image": """image images picture pictures photo photos illustration drawing art logo bild imagen
        画像 写真 絵
        imagem imagens immagine immagini
        图片 图像 照片 插图 이미지 사진 그림 изображение картинку картинка фото рисунок""",
    "database": """database databases db sql table tables row rows record records column columns
        collection collections schema datenbank tabelle base+de+données base+de+datos tabla データベース
        テーブル
        banco+de+dados tabela tabelas tabella
        数据库 数据表 表格 데이터베이스 테이블 디비 база+данных базе+данных таблица таблицу бд""",
    "message": """message messages chat channel channels conversation thread dm slack nachricht mensaje
        メッセージ チャット
        mensagem mensagens canal canais messaggio messaggi canale
        消息 聊天 频道 메시지 채널 채팅 сообщение сообщения канал чат""",
    "user": """user users member members person people account profile contact contacts benutzer nutzer
        utilisateur usuario ユーザー
        usuarios utente utenti
        用户 成员 联系人 账号 사용자 유저 회원 연락처 пользователь пользователи контакт""",
    "time": """time date clock timezone zone hour now today current uhrzeit zeit spät heure hora 時間
        時刻 時差 今
        horario agora fuso+horario adesso orario
        时间 几点 时区 现在 当前 시간 몇시 시각 현재 지금 время часовой+пояс сейчас""",
    "location": """wegbeschreibung itinéraire itinerario location place places address map maps route
        direction directions distance geocode coordinates latitude longitude nearby near ort adresse
        karte weg lieu carte adresse lugar dirección 地図 場所 住所 道
        endereco mapa indirizzo mappa luogo
        地图 地点 地址 路线 距离 附近 지도 장소 주소 경로 거리 근처 길찾기 карта маршрут адрес место расстояние рядом""",
    "payment": """payment payments charge invoice invoices customer subscription refund price billing
        zahlung rechnung paiement facture pago factura 支払 請求
        支付 付款 发票 订阅 退款 账单 결제 청구 환불 구독 인보이스 платеж оплата счет подписка возврат""",
    "docs": """docs documentation manual guide reference api+reference library sdk dokumentation
        documentación ドキュメント
        用法 教程 说明书 가이드 설명서 документация""",
    "memory": """memory knowledge graph entity entities fact facts observation remember recall
        gedächtnis mémoire memoria 記憶
        记住 记忆 知识图谱 기억 запомни запомнить память""",
    "error": """error errors exception exceptions crash crashes failure failing failed fail stacktrace
        traceback fehler erreur エラー 例外
        erro erros errore errori
        错误 报错 异常 崩溃 失败 오류 에러 예외 크래시 실패 ошибка ошибки исключение сбой""",
    "log": """log logs logging output console trace events protokoll journal ログ
        日志 로그 лог логи журнал""",
    "process": """process processes terminal shell command commands console pid program repl prozess
        befehl processus commande proceso comando プロセス コマンド ターミナル
        processo processos processi comandos
        进程 命令 终端 프로세스 명령 터미널 процесс команда терминал""",
    "cluster": """cluster pod pods container containers node nodes namespace kubernetes k8s kubectl helm
        クラスタ コンテナ
        集群 容器 节点 命名空间 클러스터 컨테이너 파드 노드 кластер поды контейнер""",
    "pipeline": """pipeline pipelines build builds ci workflow workflows job jobs test tests
        パイプライン ビルド
        流水线 构建 测试 工作流 파이프라인 빌드 테스트 워크플로 пайплайн сборка тесты""",
    "search_engine": """search+engine web+search google news headlines internet+search nachrichten
        actualités actualites noticias ニュース 検索エンジン
        新闻 搜索引擎 谷歌 百度 뉴스 구글 новости гугл""",
    "video": """video videos youtube transcript caption captions subtitles 動画 字幕
        视频 字幕 동영상 영상 자막 유튜브 видео субтитры""",
    "config": """config configuration setting settings option options preference einstellung paramètre
        configuración 設定
        配置 设置 설정 구성 настройки конфигурация конфиг""",
    "permission": """permission permissions access restriction restrictions allowed role roles
        berechtigung droit permiso 権限
        权限 권한 права разрешения""",
    "attachment": """attachment attachments attach anhang pièce+jointe adjunto 添付
        附件 첨부 вложение вложения""",
    "restore": """restore revert undo undelete untrash recover roll+back rollback put+back bring+back
        wiederherstellen restaurer restaurar ripristina ripristinare восстановить восстанови 復元 恢复 还原 복원""",
    "record": """row rows records entry entries datensatz datensätze eintrag einträge zeile
        enregistrement enregistrements fila filas registro registros linha linhas riga righe
        レコード 记录 레코드 запись записи строку строки""",
    "field": """field fields column columns property properties attribute attributes spalte feld colonne
        champ columna campo 列 項目 フィールド
        字段 属性 필드 속성 컬럼 поле поля атрибут колонка""",
    "batch": """batch bulk multiple several at+once simultaneously mass mehrere plusieurs varios varias
        一括 複数
        批量 多个 一次性 일괄 여러 пакетно несколько сразу""",
    "watch": """watch watcher watchers watching monitor monitors monitoring subscribe subscribed subscriber
        subscription follow
        follower following notify notification beobachten abonnieren suivre seguir 監視 購読
        监控 关注 모니터링 감시 мониторинг следить подписаться""",
    "sprint": """sprint sprints iteration iterations board boards backlog scrum kanban agile スプリント
        冲刺 看板 迭代 스프린트 보드 спринт доска""",
    "wiki": """wiki confluence space knowledge+base article articles ウィキ
        维基 知识库 위키 вики""",
    # how big something is: files, folders, collections, disks
    "size": """size sizes big bigger biggest large larger largest huge small smaller smallest
        bytes disk+usage disk+space storage+size how+big how+large taking+up
        größe groesse speicherplatz taille tamaño tamano tamanho dimensione dimensioni grandezza
        размер размеры サイズ 容量 大小 体积 占用 크기 용량""",
    # time booked against a ticket or a project (Jira's worklogs, timesheets, time tracking)
    "worklog": """worklog worklogs timesheet timesheets time+entry time+entries time+tracking
        time+spent log+time logged+time hours+worked work+log
        arbeitszeit zeiterfassung zeitbuchung stundenzettel temps+passé feuille+de+temps
        horas+trabajadas parte+de+horas horas+trabalhadas apontamento ore+lavorate
        трудозатраты списать+время учёт+времени 作業時間 工数 稼働時間 工时 记工时 工作时间
        작업시간 근무시간""",
    # ---- consumer apps: social feeds, playback, market data ------------------------------------
    "repost": """repost reposts reposted reblog reblogs reblogged boost boosts boosted retweet retweets
        retweeted reshare reshared retuitear republicar rebloguer
        リブースト ブースト リツイート リポスト 转发 转推 리트윗 부스트 репост ретвит""",
    "queue": """queue queues queued enqueue dequeue up+next next+up lined+up upcoming+tracks play+next
        warteschlange als+nächstes file+d'attente à+suivre cola+de+reproducción a+continuación
        fila+de+reprodução coda+di+riproduzione キュー 次に再生 再生待ち 队列 待播 대기열 재생목록+다음
        очередь очередь+воспроизведения""",
    "repeat": """repeat repeating repeated loop looping on+repeat replay wiederholen wiederholung
        endlosschleife répéter en+boucle boucle repetir repetición en+bucle bucle em+loop repetição
        ripeti ripetere in+loop ripetizione リピート 繰り返し ループ 循环 重复播放 单曲循环 반복 무한반복
        повтор повторить по+кругу""",
    "mute": """mute mutes muted muting unmute silence silenced snooze snoozed stummschalten
        stumm ausblenden mettre+en+sourdine sourdine masquer silenciar silencia silenciado
        ocultar silenziare silenzia ミュート 消音 静音 屏蔽 免打扰 뮤트 음소거 заглушить
        игнорировать скрыть""",
    "favorite": """favorite favorites favourite favourites fav favs faved starred liked+songs liked+tracks
        liked+posts favorisieren favoriten favori favoris favorito favoritos
        お気に入り 收藏夹 喜欢的 즐겨찾기 избранное""",
    "bookmark": """bookmark bookmarks bookmarked save+for+later read+later lesezeichen marque-page
        marque-pages marcador marcadores segnalibro segnalibri ブックマーク 书签 북마크 закладка закладки""",
    "archive": """archive archives archived archiving unarchive archivieren archiviert archiver archivé
        archivar archivado arquivar arquivado archiviare archiviato アーカイブ 归档 存档 보관 архив
        архивировать заархивировать""",
    "pin": """pin pins pinned pinning unpin anheften angeheftet épingler épinglé fijar fijado fixar
        fixado fissare ピン留め 置顶 고정 закрепить закреплённые""",
    "invite": """invite invites invited invitation invitations einladen einladung lade+ein inviter
        invitation invitar invitación convidar convite invitare invito 招待 邀请 초대 пригласить
        приглашение пригласи""",
    "reminder": """reminder reminders remind remind+me nudge+me erinnerung erinnere+mich rappel rappelle-moi
        recordatorio recuérdame lembrete lembre-me promemoria ricordami リマインダー リマインド 提醒
        리마인더 напоминание напомни""",
    "cart": """cart carts basket shopping+cart shopping+bag warenkorb panier carrito carrinho carrello
        カート 购物车 장바구니 корзина""",
    "weather": """weather forecast forecasts temperature rain raining snow wind humidity wetter
        wettervorhersage regen regnen regnet météo prévisions pluie pleuvoir pleut pleuvra clima tiempo+hace
        pronóstico lluvia llover llueve lloverá previsão chover chove choverá piovere piove pioverà
        chuva meteo previsioni pioggia 天気 天気予報 天气 预报 下雨 날씨 일기예보 погода прогноз+погоды
        дождь""",
    "podcast": """podcast podcasts episode episodes folge folgen épisode épisodes episodio episodios
        episódio episódios puntata puntate ポッドキャスト エピソード 播客 单集 팟캐스트 에피소드 подкаст
        выпуск эпизод""",
    "playlist": """playlist playlists mixtape wiedergabeliste liste+de+lecture lista+de+reproducción
        lista+de+reprodução プレイリスト 播放列表 歌单 플레이리스트 плейлист""",
    "balance": """balance balances available+funds funds+available kontostand guthaben solde saldo
        残高 余额 잔액 баланс остаток+на+счёте""",
    "shipment": """shipment shipments shipping tracking+number parcel parcels delivery deliveries
        versand sendung lieferung paket expédition colis livraison envío envio entrega spedizione
        pacco consegna 配送 出荷 荷物 发货 快递 物流 배송 택배 доставка посылка отправление""",
    "transcribe": """transcribe transcribes transcribed transcription speech+to+text dictation
        transkribieren transkription transcrire transcription transcribir transcripción transcrever
        transcrição trascrivere trascrizione 文字起こし 书写转录 转录 转写 받아쓰기 расшифровать
        транскрипция""",
    "substitute": """substitute substitutes substitution substitutions substitute+for instead+of use+instead
        ersatz ersatzprodukt substitut sustituto sustitutos sustitución substituto substitutos
        substituição sostituto sostituti sostituzione 代用 代用品 代替品 替代品 代替 대체품 대용 заменитель замена+продукта""",
    "expire": """expire expires expired expiring expiry expiration out+of+date past+its+date past+their+date
        best+before abgelaufen ablaufen verfallen mindesthaltbarkeit périmé périmés
        périmée caducado caducados caducidad vencido vencidos caducar scaduto scaduti scadenza
        期限切れ 賞味期限 消費期限 过期 保质期 유통기한 만료 просрочен просроченные срок+годности""",
    "low_stock": """running+low low+stock below+minimum minimum+stock min+stock reorder+level reorder+point
        restock restocking fast+leer presque+épuisé bajo+stock poco+stock
        estoque+baixo scorte+basse 在庫切れ寸前 在庫不足 库存不足 재고+부족 заканчивается мало+осталось""",
    "shopping_list": """shopping+list shopping+lists grocery+list grocery+lists groceries+list einkaufsliste
        einkaufszettel liste+de+courses lista+de+la+compra lista+de+compras lista+della+spesa 買い物リスト
        购物清单 购物单 장보기+목록 장보기 список+покупок""",
    "ohlc": """ohlc ohlcv candle candles candlestick candlesticks kline klines price+bars
        kerzen kerzenchart bougies velas candele ローソク足 k线 蜡烛图 캔들 свечи свечной""",
    # music apps (a band is an artist, a song a track), and what a listener asks of them
    "music": """music song songs track tracks tune tunes artist artists singer singers band bands
        musician musicians album albums lyrics discography bands+like artists+like songs+like
        tracks+like albums+like musik lied lieder chanson chansons musique canción canciones música
        canzone canzoni musica 音楽 アルバム 音乐 歌曲 专辑 歌手 음악 노래 앨범 가수 музыка песня песни альбом""",
    "similar": """similar similarity alike lookalike resembling resembles sounds+like sound+like
        more+like bands+like artists+like songs+like tracks+like albums+like ähnlich ähnliche
        semblable similaire similares parecido parecidos simili 似た 類似 相似 类似 비슷한 유사 похожие
        похожий""",
    "popular": """popular popularity most+popular trending top+rated hottest most+played most+listened
        most+streamed bestseller bestsellers best+selling beliebt beliebteste populaire populares
        popolari 人気 热门 流行 인기 популярные""",
    # a smart home's lights and heating; a person's time away from work
    "lamp": """lamp lamps light lights lighting bulb bulbs dimmer dimmers dim dimmed brightness lampe
        licht leuchte lumière ampoule luz lámpara bombilla luce lampada 照明 灯光 电灯 조명 전등 свет
        лампа""",
    "thermostat": """thermostat thermostats heating heater heaters setpoint set+point hvac radiator
        radiators boiler air+conditioning heizung chauffage calefacción termostato riscaldamento
        暖房 エアコン 暖气 空调 난방 에어컨 отопление термостат""",
    "absence": """absence absences time+off vacation vacations holiday holidays sick+leave sick+day
        sick+days parental+leave annual+leave maternity paternity day+off days+off leave+request
        leave+requests leave+balance leave+type leave+types urlaub abwesenheit congé congés vacances
        vacaciones ausencia férias ferie assenza 休暇 有給 休假 请假 年假 휴가 연차 отпуск больничный""",
    "restart": """restart restarts restarted rerun reruns re+run retry retries retried reboot rebooted
        retrigger run+again try+again neustarten neu+starten redémarrer relancer reiniciar
        reintentar riavvia riavviare 再起動 再実行 重启 重新运行 重试 재시작 재실행 перезапустить
        перезапусти""",
}


# Abbreviations, short forms and shell commands -> the words they stand for. The expansion's words
# are added as (slightly down-weighted) terms on both sides, documents and queries.
ABBREVIATIONS: dict[str, str] = {
    "repo": "repository",
    "repos": "repositories",
    "pr": "pull request",
    "prs": "pull requests",
    "mr": "merge request",
    "org": "organization",
    "orgs": "organizations",
    "db": "database",
    "dbs": "databases",
    "dir": "directory",
    "dirs": "directories",
    "config": "configuration",
    "cfg": "configuration",
    "env": "environment",
    "var": "variable",
    "vars": "variables",
    "stats": "statistics",
    "info": "information",
    "msg": "message",
    "k8s": "kubernetes",
    "img": "image",
    "pic": "picture",
    "docs": "documentation",
    "doc": "document",
    "auth": "authentication",
    "app": "application",
    "ns": "namespace",
    "src": "source",
    "ci": "continuous integration pipeline",
    "js": "javascript",
    "ts": "typescript",
    "py": "python",
    "url": "web address link",
    "dm": "direct message",
    "ssh": "remote shell",
    "vm": "virtual machine",
    "mkdir": "create directory",
    "ls": "list directory",
    "rm": "delete file",
    "rmdir": "delete directory",
    "mv": "move file",
    "cp": "copy file",
    "cat": "read file",
    "grep": "search text",
    "ps": "list processes",
    "cd": "change directory",
    "pwd": "current directory",
    "du": "disk usage size",
    "touch": "create file",
    "curl": "fetch url",
    "wget": "download url",
    "chmod": "change permissions",
    "xhr": "network request",
    "ajax": "network request",
    "tz": "time zone",
    "wip": "work in progress",
    "sla": "service level agreement",
    "txn": "transaction",
    "txns": "transactions",
    "acct": "account",
    "addr": "address",
    "qty": "quantity",
    "desc": "description",
    "param": "parameter",
    "params": "parameters",
    "perms": "permissions",
    "pkg": "package",
    "deps": "dependencies",
    "prod": "production",
    "tmpl": "template",
    "mtg": "meeting",
    "appt": "appointment",
    "convo": "conversation",
    "vid": "video",
    "ppt": "presentation",
    "lat": "latitude",
    "lng": "longitude",
    "geo": "location",
    "mem": "memory",
    "dns": "domain name",
    "ytd": "year to date",
    "cogs": "cost of goods sold",
    "cv": "resume",
    "cvs": "resumes",
    "sso": "single sign on login",
    "mfa": "multi factor authentication",
    "2fa": "two factor authentication",
    "otp": "one time password",
    "totp": "one time password authenticator",
    "vat": "value added tax",
    "gst": "goods and services tax",
    "sku": "product stock keeping unit",
    "skus": "products",
    "pnl": "profit and loss",
    "kpi": "key performance indicator metric",
    "kpis": "key performance indicators metrics",
    "mrr": "monthly recurring revenue",
    "arr": "annual recurring revenue",
    "ats": "applicant tracking",
    "pto": "paid time off leave",
    "faq": "frequently asked questions",
    "seo": "search engine optimization",
    "cpu": "processor",
    "ram": "memory",
    "ssl": "certificate",
    "tls": "certificate",
    "cert": "certificate",
    "certs": "certificates",
    "eod": "end of day",
    "eta": "estimated arrival",
    "etl": "extract transform load",
    "yoy": "year over year",
    "roi": "return on investment",
    "okr": "objective key result",
    "okrs": "objectives key results",
    "iam": "identity access management",
    "rbac": "role based access",
    "acl": "access control list permissions",
    "jwt": "token",
    "oauth": "authorization token",
    "qa": "quality assurance testing",
    "rca": "root cause analysis",
    "ltv": "lifetime value",
    "aov": "average order value",
    "dau": "daily active users",
    "mau": "monthly active users",
}


class Lexicon:
    """Stemmed surface form -> concept tags (and English words, for a glossary's forms), with
    phrase and CJK substring tables."""

    def __init__(
        self,
        concepts: dict[str, str],
        abbreviations: dict[str, str] | None = None,
        glossary: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.abbreviations: dict[str, tuple[str, ...]] = {
            k: tuple(analyze(v)) for k, v in (abbreviations or {}).items()
        }
        self.single: dict[str, tuple[str, ...]] = {}
        self.phrases: dict[tuple[str, str], tuple[str, ...]] = {}
        self.cjk: list[tuple[str, str]] = []
        single: dict[str, list[str]] = {}
        phrases: dict[tuple[str, str], list[str]] = {}
        # a concept's forms give its tag; a glossary word's forms in other languages give the
        # English word's own stem, so "узел" is matched as "node" wherever a tool says node
        tagged = [("@" + concept, forms) for concept, forms in concepts.items()]
        # a glossary word's stem -> the English words it stands for (their neighbours in meaning
        # are a foreign form's too)
        self.english: dict[str, tuple[str, ...]] = {}
        for english, languages in (glossary or {}).items():
            # a two-word entry ("air quality") reads its forms (Luftqualität) as both words
            for stem_ in analyze(english):
                tagged.append((stem_, " ".join(languages.values())))
            for word in english.split():
                for stem_ in analyze(word):
                    self.english[stem_] = (*self.english.get(stem_, ()), word)
        for tag, forms in tagged:
            for form in forms.split():
                folded = fold(form)
                if has_cjk(folded):
                    # a Japanese form of kanji alone is folded to Simplified like a Chinese task,
                    # but a Japanese task (with kana) keeps its kanji: the form is kept both ways
                    self.cjk.extend({(folded, tag), (fold(form, simplify_han=False), tag)})
                    continue
                parts = [stem(w) for w in words(form.replace("+", " "))]
                if not parts:
                    continue
                if len(parts) == 1:
                    single.setdefault(parts[0], []).append(tag)
                else:
                    # first two words of a phrase are enough to recognise it
                    phrases.setdefault((parts[0], parts[1]), []).append(tag)
        # German writes compounds as one word (Umsatzsteuersätze: sales tax rates): a glossary
        # form of five letters or more found inside a long word the lexicon does not know
        compound: dict[str, list[str]] = {}
        for english, languages in (glossary or {}).items():
            for form in languages.get("de", "").split():
                folded = fold(form)
                if "+" not in form and len(folded) >= 5 and folded.isalpha():
                    compound.setdefault(folded, []).extend(analyze(english))  # Antwort: answer, reply
        self.compound_forms = {k: tuple(dict.fromkeys(v)) for k, v in compound.items()}
        self.single = {k: tuple(sorted(set(v))) for k, v in single.items()}
        self.phrases = {k: tuple(sorted(set(v))) for k, v in phrases.items()}
        # phrasal verbs whose particle may follow the object ("hand the bug over", "roll the
        # deploy back"): verb stem -> {particle stem: tags}
        self.separable: dict[str, dict[str, tuple[str, ...]]] = {}
        for (first, second), found in self.phrases.items():
            if second in _PARTICLES:
                self.separable.setdefault(first, {})[second] = found
        self.cjk.sort()
        # forms by their first character: a task is read in one pass, not once per form
        self._cjk_by_first: dict[str, list[tuple[str, str]]] = {}
        for form, tag in self.cjk:
            self._cjk_by_first.setdefault(form[0], []).append((form, tag))

    def compound_parts(self, word: str) -> list[str]:
        """The English stems of the German glossary forms inside a long compound ``word``
        (folded), longest forms first and not overlapping, if together they make up more than
        half of it: "umsatzsteuersatze" -> revenue, sales, tax; "regeneration" (Regen, rain: 5
        of 12 letters) -> nothing."""
        found: list[tuple[int, int, tuple[str, ...]]] = []
        for form, english in self.compound_forms.items():
            at = word.find(form)
            if at >= 0 and form != word:
                found.append((at, at + len(form), english))
        found.sort(key=lambda span: span[0] - span[1])
        kept: list[tuple[int, int, tuple[str, ...]]] = []
        for start, end, english in found:
            if all(end <= s or start >= e for s, e, _ in kept):
                kept.append((start, end, english))
        if 2 * sum(end - start for start, end, _ in kept) <= len(word):
            return []
        return [t for _, _, english in sorted(kept) for t in english]

    def rejoin_separable(self, text: str) -> str:
        """``text`` with each German clause that starts with a separable verb's imperative and
        ends with its prefix written as the verb it makes: "Leg im Repo ein Issue an: ..." ->
        "anlegen im Repo ein Issue: ...", "brich ihn ab" -> "abbrechen ihn". Only verbs the
        lexicon knows are rejoined, so an English clause that ends in "an" stays as it is."""
        out: list[str] = []
        start = 0
        for end in [m.start() for m in _CLAUSE_END.finditer(text)] + [len(text)]:
            clause = text[start:end]
            joined = self._rejoined(clause)
            if joined is not None:
                clause = clause[: len(clause) - len(clause.lstrip())] + joined
            out.append(clause + text[end : end + 1])
            start = end + 1
        return "".join(out)

    def _rejoined(self, clause: str) -> str | None:
        raw = clause.split()
        first = 0
        while first < len(raw) and raw[first].lower() in _BEFORE_VERB:
            first += 1
        if len(raw) - first < 2 or raw[-1].lower() not in _GERMAN_PARTICLES:
            return None
        verb, prefix = raw[first].lower(), raw[-1].lower()
        base = verb[:-1] if verb.endswith("e") else verb
        # the imperative's stem, or its vowel changed back (brich -> brechen, gib -> geben)
        for stem_ in (base, base[::-1].replace("i", "e", 1)[::-1]):
            joined = prefix + stem_ + "en"
            if self.single.get(stem(fold(joined))):
                return " ".join([*raw[:first], joined, *raw[first + 1 : -1]])
        return None

    def expand(self, text: str) -> list[str]:
        """Stems of the words that the abbreviations in ``text`` stand for."""
        out: list[str] = []
        for w in words(text):
            full = self.abbreviations.get(w)
            if full is not None:
                out.extend(full)
        return out

    def tags(self, text: str) -> list[str]:
        """Concept tags found in ``text`` (in order of appearance, repeats kept)."""
        found: list[str] = []
        stems = [stem(w) for w in words(text)]
        inside = -1  # the last word of a phrase found: its words' own tags do not count
        for i, s in enumerate(stems):
            phrase = self.phrases.get((s, stems[i + 1]), ()) if i + 1 < len(stems) else ()
            if phrase:
                inside = i + 1
                found.extend(phrase)
            elif i > inside:
                found.extend(self.single.get(s, ()))
            if i + 1 < len(stems):
                particles = self.separable.get(s)
                if particles:
                    for later in stems[i + 2 : i + 2 + _SEPARABLE_GAP]:
                        if later in particles:
                            found.extend(particles[later])
                            break
        if not text.isascii():
            found.extend(self._cjk_tags(fold(text)))
        return found

    def _cjk_tags(self, folded: str) -> list[str]:
        """Tags of the CJK forms in ``folded``, longest first: a form inside a longer one found at
        the same place does not count (Korean 저장소 is a repository, not 저장 "save" and 장소
        "place")."""
        spans: list[tuple[int, int, str]] = []
        by_first = self._cjk_by_first
        for start, ch in enumerate(folded):
            for form, tag in by_first.get(ch, ()):
                if folded.startswith(form, start):
                    spans.append((start, start + len(form), tag))
        if not spans:
            return []
        spans.sort(key=lambda span: (span[0] - span[1], span[0]))
        kept: list[tuple[int, int, str]] = []
        for start, end, tag in spans:
            if not any(s <= start and end <= e and (end - start) < (e - s) for s, e, _ in kept):
                kept.append((start, end, tag))
        return [tag for _, _, tag in sorted(kept)]


def with_languages(concepts: dict[str, str], more: dict[str, dict[str, str]]) -> dict[str, str]:
    """``concepts`` with each concept's forms in other languages (``languages.FORMS``) added."""
    return {
        concept: " ".join([forms, *more.get(concept, {}).values()]) for concept, forms in concepts.items()
    }


LEXICON = Lexicon(with_languages(CONCEPTS, FORMS), ABBREVIATIONS, GLOSSARY)
